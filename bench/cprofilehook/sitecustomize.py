"""
bench/workersplit.py --cprofile: every Python process started with this
directory first on PYTHONPATH and IKEBENCH_CPROFILE set (a directory) runs
under cProfile and writes its statistics (marshal, pstats' format) to
IKEBENCH_CPROFILE/PID.N at each SIGUSR2. The file is opened at start-up,
before a privsep worker's chroot; the counts, not the times, are what
such a run is for (the profiler slows every call down).
"""

import os

if os.environ.get("IKEBENCH_CPROFILE"):
    import cProfile
    import marshal
    import signal

    _directory = os.environ["IKEBENCH_CPROFILE"]
    _pid = os.getpid()
    # Opened now: a worker cannot open files after its chroot.
    _files = [open(os.path.join(_directory, "%d.%d" % (_pid, n)), "wb") for n in range(4)]
    _profile = cProfile.Profile()

    def _dump(signum, frame):
        if not _files:
            return
        _profile.disable()
        _profile.create_stats()
        f = _files.pop(0)
        marshal.dump(_profile.stats, f)
        f.close()
        _profile.enable()

    signal.signal(signal.SIGUSR2, _dump)
    _profile.enable()
