"""
ikebench: the IKE SA set-up benchmark (run C{python3 bench/ikebench.py}).
"""
