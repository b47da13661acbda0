#!/bin/bash
# Runs INSIDE the ESP-capable VM (tests.test_kernel_vm_mobike): MOBIKE with
# the xfrm provider's tunnel policies. Namespace a (ikedtx, initiator) has
# two links to namespace b (ikedtx, responder, its IKE address 10.9.0.2 on
# lo): va-vb (192.0.2.0/24, a's way to 10.9.0.2 first) and wa-wb
# (198.51.100.0/24, the backup route). Pings cross the tunnel
# 10.1.0.0/16 <-> 10.2.0.0/16 (routes from the daemons' table 220 only);
# then a's route and address on va go: a sends UPDATE_SA_ADDRESSES from
# 198.51.100.1, both move their SAs, their tunnel policies' templates and
# their table-220 routes, and pings cross again.
# Prints "key=value" lines and NAME_begin/NAME_end sections.  $1: the Python.
set -u
PY=${1:-python3}
W=/tmp/ikedtx-mobike
mkdir -p $W/etc
modprobe -a xfrm_user esp4 veth gcm ghash_generic seqiv aesni_intel ghash_clmulni_intel authenc xfrm4_tunnel \
    tunnel4 2>/dev/null
ip netns add a; ip netns add b
ip link add va netns a type veth peer name vb netns b
ip link add wa netns a type veth peer name wb netns b
for n in a b; do ip -n $n link set lo up; done
ip -n a addr add 192.0.2.1/24 dev va; ip -n b addr add 192.0.2.2/24 dev vb
ip -n a addr add 198.51.100.1/24 dev wa; ip -n b addr add 198.51.100.2/24 dev wb
for l in va wa; do ip -n a link set $l up; done
for l in vb wb; do ip -n b link set $l up; done
ip -n a addr add 10.1.0.1/32 dev lo; ip -n b addr add 10.2.0.1/32 dev lo; ip -n b addr add 10.9.0.2/32 dev lo
ip -n a route add 10.9.0.2/32 via 192.0.2.2 dev va metric 100
ip -n a route add 10.9.0.2/32 via 198.51.100.2 dev wa metric 200
cat > $W/a.conf <<EOC
ikev2 "mob" active esp from 10.1.0.0/16 to 10.2.0.0/16 peer 10.9.0.2 childsa enc aes-128-gcm srcid a.example dstid b.example psk "vm-secret"
EOC
cat > $W/b.conf <<EOC
ikev2 "mob" passive esp from 10.2.0.0/16 to 10.1.0.0/16 local 10.9.0.2 peer any childsa enc aes-128-gcm srcid b.example dstid a.example psk "vm-secret"
EOC
chmod 600 $W/a.conf $W/b.conf
for n in b a; do
    ip netns exec $n "$PY" -c "from ikedtx.cli import iked; iked()" -d -v -f $W/$n.conf --kernel xfrm \
        -s $W/$n.sock --etc-dir $W/etc > $W/$n.log 2>&1 &
    echo $! > $W/$n.pid
done
ok=0
for i in $(seq 900); do
    if [ "$(ip -n a xfrm state | grep -c '^src')" -ge 2 ] && [ "$(ip -n b xfrm state | grep -c '^src')" -ge 2 ]; then ok=1; break; fi
    sleep 0.2
done
echo "installed=$ok"
received() { ip netns exec a ping -c ${1:-3} -i 0.2 -W 2 -q 10.2.0.1 2>&1 | grep -o '[0-9]* received' | cut -d' ' -f1; }
show() {  # $1: name
    echo "$1_policies_a_begin"; ip -n a xfrm policy; echo "$1_policies_a_end"
    echo "$1_policies_b_begin"; ip -n b xfrm policy; echo "$1_policies_b_end"
    echo "$1_states_a_begin"; ip -n a xfrm state; echo "$1_states_a_end"
    echo "$1_states_b_begin"; ip -n b xfrm state; echo "$1_states_b_end"
    echo "$1_table_a_begin"; ip -n a route show table 220; echo "$1_table_a_end"
    echo "$1_table_b_begin"; ip -n b route show table 220; echo "$1_table_b_end"
}
packets() {  # b's inbound SA from a at $1: the packets it decrypted
    ip -n b -s xfrm state | grep -A14 "^src $1 dst 10.9.0.2" | grep -m1 -o '[0-9]\+(packets)' | cut -d'(' -f1
}
echo "ping_before=$(received)"
show before
echo "packets_in_b_before=$(packets 192.0.2.1)"
# a moves: its way to b over va goes, then its address there (the kernel
# flushes the table-220 route through va; a's daemon routes it again when
# its flows move, through wa).
ip -n a route del 10.9.0.2/32 via 192.0.2.2 dev va
ip -n a addr del 192.0.2.1/24 dev va
moved=0
now() { cut -d' ' -f1 /proc/uptime | cut -d. -f1; }
deadline=$(( $(now) + 60 ))
while [ "$(now)" -lt $deadline ]; do
    if ip -n b xfrm state | grep -q '^src 198.51.100.1 dst 10.9.0.2' && ip -n a xfrm policy | grep -q 'tmpl src 198.51.100.1' \
            && ip -n b xfrm policy | grep -q 'tmpl src 10.9.0.2 dst 198.51.100.1'; then moved=1; break; fi
    sleep 0.2
done
echo "moved=$moved"
# a's route comes with its moved flows (test_initiatorRouteFollows).
for i in $(seq 100); do ip -n a route show table 220 | grep -q 'dev wa' && break; sleep 0.2; done
sleep 1
echo "ping_after=$(received 10)"
show after
echo "packets_in_b_after=$(packets 198.51.100.1)"
# a deletes its Child SA: the trap flow back under the selector has the
# moved endpoints in its template (test_trapFollows).
spi=$(ip -n a xfrm state | awk '/^src 10.9.0.2 dst 198.51.100.1/ { getline; print $4; exit }')
ip netns exec a "$PY" -c "import sys; from ikedtx.control import sync, commands; sync.callRemote(sys.argv[1], commands.DeleteChildSA, spiIn=sys.argv[2])" \
    $W/a.sock "$spi" > $W/delete.out 2>&1
echo "child_deleted=$?"
for i in $(seq 100); do [ "$(ip -n a xfrm state | grep -c '^src')" -eq 0 ] && break; sleep 0.2; done
echo "trap_policies_a_begin"; ip -n a xfrm policy; echo "trap_policies_a_end"
echo "trap_table_a_begin"; ip -n a route show table 220; echo "trap_table_a_end"
for n in a b; do kill -TERM "$(cat $W/$n.pid)"; done
for n in a b; do
    for i in $(seq 100); do kill -0 "$(cat $W/$n.pid)" 2>/dev/null || break; sleep 0.1; done
done
echo "after_stop_begin"; for n in a b; do ip -n $n xfrm state; ip -n $n xfrm policy; ip -n $n route show table 220; done; echo "after_stop_end"
echo "log_a_begin"; grep -v "amp#info" $W/a.log | tail -n 60; echo "log_a_end"
echo "log_b_begin"; grep -v "amp#info" $W/b.log | tail -n 60; echo "log_b_end"
