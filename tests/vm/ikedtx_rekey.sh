#!/bin/bash
# Runs INSIDE the ESP-capable VM (tests.test_kernel_vm_rekey): two ikedtx
# daemons with --kernel xfrm in namespaces a and b negotiate a PSK Child SA
# with "lifetime 120 bytes 24K" and "ikelifetime 25", then 400 pings (40 s)
# cross it: the Child SA reaches its soft byte limit, which only the kernel
# counts (its soft expire starts the rekey), and the IKE SA is rekeyed on
# ikedtx's timer. Prints "key=value" lines and NAME_begin/NAME_end sections
# for the host to check.  $1: the Python to use.
set -u
PY=${1:-python3}
W=/tmp/ikedtx-rekey
mkdir -p $W/etc
modprobe -a xfrm_user esp4 veth gcm seqiv aesni_intel authenc 2>/dev/null
ip netns add a; ip netns add b
ip link add va netns a type veth peer name vb netns b
for n in a b; do ip -n $n link set lo up; done
ip -n a addr add 192.0.2.1/24 dev va; ip -n b addr add 192.0.2.2/24 dev vb
ip -n a link set va up; ip -n b link set vb up
ip -n a addr add 10.1.0.1/32 dev lo; ip -n b addr add 10.2.0.1/32 dev lo
ip -n a route add 10.2.0.0/16 via 192.0.2.2 src 10.1.0.1
ip -n b route add 10.1.0.0/16 via 192.0.2.1 src 10.2.0.1
cat > $W/a.conf <<EOC
ikev2 "vm" active esp from 10.1.0.1 to 10.2.0.1 local 192.0.2.1 peer 192.0.2.2 childsa enc aes-128-gcm ikelifetime 25 lifetime 120 bytes 24K psk "vm-secret"
EOC
cat > $W/b.conf <<EOC
ikev2 "vm" passive esp from 10.2.0.1 to 10.1.0.1 local 192.0.2.2 peer 192.0.2.1 childsa enc aes-128-gcm ikelifetime 3000 lifetime 120 bytes 24K psk "vm-secret"
EOC
chmod 600 $W/a.conf $W/b.conf
for n in b a; do
    ip netns exec $n "$PY" -c "from ikedtx.cli import iked; iked()" -d -f $W/$n.conf --kernel xfrm \
        -s $W/$n.sock --etc-dir $W/etc > $W/$n.log 2>&1 &
    echo $! > $W/$n.pid
done
ok=0
for i in $(seq 900); do
    if [ "$(ip -n a xfrm state | grep -c '^src')" -ge 2 ] && [ "$(ip -n b xfrm state | grep -c '^src')" -ge 2 ]; then ok=1; break; fi
    sleep 0.1
done
echo "installed=$ok"
echo "spis_before=$(ip -n a xfrm state | grep -o 'spi 0x[0-9a-f]*' | sort | tr '\n' ' ')"
# -w: ping waits (up to 60 s in all) for every answer; with -W alone it
# waits only two round trips after the last request, and a reply the busy
# emulated CPU delayed then counts as lost (a CI run lost 1 of 400 so).
ip netns exec a ping -c 400 -i 0.1 -w 60 -q -I 10.1.0.1 10.2.0.1 | grep -o '[0-9]* received' | sed 's/ received//; s/^/received=/'
sleep 3
echo "spis_after=$(ip -n a xfrm state | grep -o 'spi 0x[0-9a-f]*' | sort | tr '\n' ' ')"
echo "states_a_begin"; ip -n a -s xfrm state; echo "states_a_end"
for n in a b; do kill -TERM "$(cat $W/$n.pid)"; done
for n in a b; do
    for i in $(seq 100); do kill -0 "$(cat $W/$n.pid)" 2>/dev/null || break; sleep 0.1; done
done
echo "after_stop_begin"; for n in a b; do ip -n $n xfrm state; ip -n $n xfrm policy; done; echo "after_stop_end"
echo "log_a_begin"; grep -v "amp#info" $W/a.log | tail -n 60; echo "log_a_end"
echo "log_b_begin"; grep -v "amp#info" $W/b.log | tail -n 60; echo "log_b_end"
