#!/bin/bash
# Runs INSIDE the ESP-capable VM (tests.test_kernel_vm_daemon): two ikedtx
# daemons with --kernel xfrm in namespaces a and b, for what the daemon does
# around its SAs (issue 8):
#   - tunnel routes: no manual route to the remote inner networks; the
#     daemon's table 220 routes them with the local inner source, so a plain
#     ping (no -I) goes through ESP;
#   - the IPv6 leak block: IPv6 on the link is blocked while the daemons
#     run, an IPv6 flow (fd01::/16 <-> fd02::/16 over IPv4 peers) passes,
#     and -6 lifts the block;
#   - an install the kernel refuses (ChaCha20-Poly1305 with module loading
#     switched off) is reported with the SA and the kernel's reason, the
#     Child SA is deleted, the daemons keep running;
#   - IPcomp negotiated between the daemons (policy "comp"): IPcomp SAs
#     with the ESP SAs, large pings pass; ESN with its replay window in
#     the negotiated ESP SAs;
#   - ikectl decouple takes SAs, flows, traps, routes and the IPv6 block
#     out of the kernel, ikectl couple puts them back;
#   - a's daemon killed (SIGKILL) leaves its SAs, flows, routes, rule and
#     IPv6 block; its next start removes them; after SIGTERM nothing is
#     left (SAs, policies, routes, rules).
# Prints "key=value" lines and NAME_begin/NAME_end sections.  $1: the Python.
set -u
PY=${1:-python3}
W=/tmp/ikedtx-datapath
mkdir -p $W/etc
modprobe -a xfrm_user esp4 esp6 veth gcm ghash_generic seqiv aesni_intel ghash_clmulni_intel authenc \
    xfrm4_tunnel xfrm6_tunnel tunnel4 tunnel6 ipv6 cbc ctr sha256_generic sha256_ssse3 echainiv ipcomp deflate \
    2>/dev/null
ip netns add a; ip netns add b
ip link add va netns a type veth peer name vb netns b
for n in a b; do
    ip -n $n link set lo up
    ip netns exec $n sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    # The larval SAs the kernel makes for an acquire (SPI 0) are the
    # kernel's: they go after this many seconds (30 by default).
    ip netns exec $n sysctl -qw net.core.xfrm_acq_expires=3
done
ip -n a addr add 192.0.2.1/24 dev va; ip -n b addr add 192.0.2.2/24 dev vb
ip -n a addr add 192.0.2.11/24 dev va; ip -n b addr add 192.0.2.12/24 dev vb
ip -n a addr add 192.0.2.21/24 dev va; ip -n b addr add 192.0.2.22/24 dev vb
ip -n a addr add 192.0.2.31/24 dev va; ip -n b addr add 192.0.2.32/24 dev vb
ip -n a addr add 192.0.2.41/24 dev va; ip -n b addr add 192.0.2.42/24 dev vb
ip -n a addr add 2001:db8::1/64 dev va nodad; ip -n b addr add 2001:db8::2/64 dev vb nodad
ip -n a link set va up; ip -n b link set vb up
ip -n a addr add 10.1.0.1/32 dev lo; ip -n b addr add 10.2.0.1/32 dev lo; ip -n b addr add 10.6.0.1/32 dev lo
ip -n b addr add 10.7.0.1/32 dev lo
ip -n a addr add fd01::1/128 dev lo; ip -n b addr add fd02::1/128 dev lo
# No route to 10.2.0.0/16 or fd02::/16 (nor back): the daemons' own.
for i in $(seq 50); do
    ip netns exec a ping -6 -c 1 -W 1 2001:db8::2 >/dev/null 2>&1 && break; sleep 0.1
done
echo "baseline_ping6=$(ip netns exec a ping -6 -c 2 -i 0.2 -W 1 -q 2001:db8::2 | grep -o '[0-9]* received' | cut -d' ' -f1)"
# The kernel cannot load ChaCha20-Poly1305 (the root file system is an
# overlay here): the "bad" Child SA fails to install.
mkdir -p /etc/modprobe.d
echo "install chacha20poly1305 /bin/false" > /etc/modprobe.d/ikedtx-no-chacha.conf
echo "chacha_loaded=$(grep -c '^chacha20poly1305 ' /proc/modules)"

cat > $W/a.conf <<EOC
ikev2 "v4" active esp from 10.1.0.0/16 to 10.2.0.0/16 local 192.0.2.1 peer 192.0.2.2 childsa enc aes-128-gcm srcid a-v4.example dstid b-v4.example psk "vm-secret"
ikev2 "v6" active esp from fd01::/16 to fd02::/16 local 192.0.2.11 peer 192.0.2.12 childsa enc aes-128-gcm srcid a-v6.example dstid b-v6.example psk "vm-secret"
ikev2 "bad" active esp from 10.1.0.0/16 to 10.5.0.0/16 local 192.0.2.21 peer 192.0.2.22 childsa enc chacha20-poly1305 srcid a-bad.example dstid b-bad.example psk "vm-secret"
ikev2 "od" passive esp from 10.1.0.0/16 to 10.6.0.0/16 local 192.0.2.31 peer 192.0.2.32 childsa enc aes-128-gcm srcid a-od.example dstid b-od.example psk "vm-secret"
ikev2 "comp" active ipcomp esp from 10.1.0.0/16 to 10.7.0.0/16 local 192.0.2.41 peer 192.0.2.42 childsa enc aes-128-gcm srcid a-comp.example dstid b-comp.example psk "vm-secret"
EOC
cat > $W/b.conf <<EOC
ikev2 "v4" passive esp from 10.2.0.0/16 to 10.1.0.0/16 local 192.0.2.2 peer 192.0.2.1 childsa enc aes-128-gcm srcid b-v4.example dstid a-v4.example psk "vm-secret"
ikev2 "v6" passive esp from fd02::/16 to fd01::/16 local 192.0.2.12 peer 192.0.2.11 childsa enc aes-128-gcm srcid b-v6.example dstid a-v6.example psk "vm-secret"
ikev2 "bad" passive esp from 10.5.0.0/16 to 10.1.0.0/16 local 192.0.2.22 peer 192.0.2.21 childsa enc chacha20-poly1305 srcid b-bad.example dstid a-bad.example psk "vm-secret"
ikev2 "od" passive esp from 10.6.0.0/16 to 10.1.0.0/16 local 192.0.2.32 peer 192.0.2.31 childsa enc aes-128-gcm srcid b-od.example dstid a-od.example psk "vm-secret"
ikev2 "comp" passive ipcomp esp from 10.7.0.0/16 to 10.1.0.0/16 local 192.0.2.42 peer 192.0.2.41 childsa enc aes-128-gcm srcid b-comp.example dstid a-comp.example psk "vm-secret"
EOC
# One identity per policy: a new IKE SA with INITIAL_CONTACT replaces the
# peer's others of the same identity (RFC 7296 2.4).
chmod 600 $W/a.conf $W/b.conf

now() { cut -d' ' -f1 /proc/uptime | cut -d. -f1; }

start() {  # $1: run name, $2: SAs to wait for in each namespace, then extra iked arguments
    local run=$1 want=$2; shift 2
    for n in b a; do
        ip netns exec $n "$PY" -c "from ikedtx.cli import iked; iked()" -d -v -f $W/$n.conf --kernel xfrm \
            -s $W/$n.sock --etc-dir $W/etc "$@" > $W/$n.$run.log 2>&1 &
        echo $! > $W/$n.pid
    done
    local t0 deadline ok=0
    t0=$(now); deadline=$((t0 + 420))
    while [ "$(now)" -lt $deadline ]; do
        kill -0 "$(cat $W/a.pid)" 2>/dev/null && kill -0 "$(cat $W/b.pid)" 2>/dev/null || break
        # (A crashed run left its socket file: the log says when it is live.)
        if grep -q "loaded [0-9]* policies" $W/a.$run.log && grep -q "loaded [0-9]* policies" $W/b.$run.log \
                && [ "$(ip -n a xfrm state | grep -c '^src')" -ge $want ] && [ "$(ip -n b xfrm state | grep -c '^src')" -ge $want ]; then
            ok=1; break
        fi
        sleep 0.5
    done
    echo "${run}_installed=$ok"
    echo "${run}_seconds=$(( $(now) - t0 ))"
}

stop() {  # $1: run name; $2: the signal that ends a's daemon (TERM; KILL: a crash)
    local run=$1 signal=${2:-TERM} workers
    workers=$(pgrep -P "$(cat $W/a.pid)" | tr '\n' ' ')
    for n in a b; do
        echo "${run}_alive_$n=$(kill -0 "$(cat $W/$n.pid)" 2>/dev/null && echo 1 || echo 0)"
        if [ $n = a ]; then kill -$signal "$(cat $W/$n.pid)"; else kill -TERM "$(cat $W/$n.pid)"; fi
    done
    for n in a b; do
        for i in $(seq 150); do kill -0 "$(cat $W/$n.pid)" 2>/dev/null || break; sleep 0.1; done
    done
    # A killed daemon's worker ends on its own once its parent is gone.
    for pid in $workers; do
        for i in $(seq 150); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
    done
    echo "${run}_larval_begin"; for n in a b; do ip -n $n xfrm state | grep -A1 '^src' | grep -B1 'spi 0x00000000'; done
    echo "${run}_larval_end"
    sleep 4
    for n in a b; do
        echo "${run}_after_stop_${n}_begin"
        ip -n $n xfrm state; ip -n $n xfrm policy; ip -n $n route show table 220; ip -n $n -6 route show table 220
        echo "${run}_after_stop_${n}_end"
        echo "${run}_rules_after_stop_${n}_begin"; ip -n $n rule show; ip -n $n -6 rule show
        echo "${run}_rules_after_stop_${n}_end"
    done
}

received() {  # ping arguments (in namespace a): how many answers (0 when ping could not even send)
    local n
    n=$(ip netns exec a ping -c 3 -i 0.2 -W 2 -q "$@" 2>&1 | tee $W/ping.out | grep -o '[0-9]* received' | cut -d' ' -f1)
    echo "${n:-0}"
}

start blocked 4
# The bad Child SA has had its chance by now (all three were initiated at once).
for i in $(seq 60); do grep -q "installing Child SA" $W/a.blocked.log && break; sleep 0.5; done
# On demand: "od" is passive on both sides; its trap flow's acquire starts it.
odStates() {  # the od Child SA's SAs in a (not the kernel's larval acquire states, SPI 0)
    ip -n a xfrm state | grep -A1 '^src 192.0.2.3[12] dst 192.0.2.3[12]' | grep 'proto esp spi' | grep -vc 'spi 0x00000000'
}
echo "od_states_before=$(odStates)"
for i in $(seq 40); do
    ip netns exec a ping -c 1 -W 1 -q 10.6.0.1 >/dev/null 2>&1 && break
done
echo "od_tries=$i"
echo "od_ping=$(received 10.6.0.1)"
echo "od_states_after=$(odStates)"
echo "blocked_ping4=$(received 10.2.0.1)"
echo "blocked_ping6_flow=$(received -6 fd02::1)"
echo "blocked_ping6_link=$(received -6 2001:db8::2)"
echo "blocked_ping6_loopback=$(received -6 ::1)"
echo "blocked_ping6_link_output_begin"; cat $W/ping.out; echo "blocked_ping6_link_output_end"
echo "blocked_table_begin"; ip -n a route show table 220; ip -n a -6 route show table 220; echo "blocked_table_end"
echo "blocked_rules_begin"; ip -n a rule show; ip -n a -6 rule show; echo "blocked_rules_end"
echo "blocked_policies_begin"; ip -n a xfrm policy; echo "blocked_policies_end"
echo "blocked_states_begin"; ip -n a -s xfrm state; echo "blocked_states_end"
echo "blocked_route_get=$(ip -n a route get 10.2.0.1 | head -n1)"

# IPcomp (policy "comp"): its ESP and IPcomp SAs; pings large enough to be
# compressed (a random payload would not shrink: ping's pattern does).
compStates() { ip -n a xfrm state | grep -c '^src 192.0.2.4[12] dst 192.0.2.4[12]'; }
for i in $(seq 60); do [ "$(compStates)" -ge 4 ] && break; sleep 0.5; done
echo "comp_ping=$(received -s 1200 -p 61 10.7.0.1)"
echo "comp_states_begin"; ip -n a -s xfrm state | awk '/^src/ { p = ($2 ~ /^192\.0\.2\.4[12]$/) } p'; echo "comp_states_end"

# ikectl decouple: everything out of the kernel (SAs, flows, traps, routes,
# the IPv6 block); couple: all of it back.
ikectl() { ip netns exec a "$PY" -c "from ikedtx.cli import ikectl; ikectl()" -s $W/a.sock "$@"; }
espStates() { ip -n a xfrm state | grep 'proto esp spi' | grep -vc 'spi 0x00000000'; }
echo "blocked_esp_count=$(espStates)"
echo "decouple_rc=$(ikectl decouple >/dev/null 2>$W/ikectl.err; echo $?)"
echo "decoupled_esp=$(espStates)"
echo "decoupled_policies_begin"; ip -n a xfrm policy; echo "decoupled_policies_end"
echo "decoupled_table_begin"; ip -n a route show table 220; ip -n a -6 route show table 220; echo "decoupled_table_end"
echo "couple_rc=$(ikectl couple >/dev/null 2>>$W/ikectl.err; echo $?)"
echo "ikectl_err_begin"; cat $W/ikectl.err; echo "ikectl_err_end"
echo "recoupled_esp=$(espStates)"
echo "recoupled_policies_begin"; ip -n a xfrm policy; echo "recoupled_policies_end"
echo "recoupled_table_begin"; ip -n a route show table 220; ip -n a -6 route show table 220; echo "recoupled_table_end"
echo "recoupled_ping4=$(received 10.2.0.1)"
# a's daemon crashes (SIGKILL: nothing flushed): its SAs, flows, traps,
# routes, rule and IPv6 block stay in the kernel until its next start
# (the "open" run) removes them.
stop blocked KILL
echo "blocked_log_a_begin"; cat $W/a.blocked.log; echo "blocked_log_a_end"
echo "blocked_log_b_begin"; cat $W/b.blocked.log; echo "blocked_log_b_end"

# -6: no block; nothing to negotiate for this (the daemons need only be up).
start open 0 -6
echo "open_ping6_link=$(received -6 2001:db8::2)"
echo "open_policies_begin"; ip -n a xfrm policy; echo "open_policies_end"
stop open
echo "open_log_a_begin"; tail -n 40 $W/a.open.log; echo "open_log_a_end"
echo "open_removed_a_begin"; grep -i "left" $W/a.open.log; echo "open_removed_a_end"
