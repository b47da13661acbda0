#!/bin/bash
# Records tests/data/strongswan-exchange.pcap: two strongSwan charons in
# network namespaces (lab addresses only), captured on the initiator's veth.
#
#   IKE SA "plain" over IPv4 through a NAT (a router namespace masquerades):
#     IKE_SA_INIT on 500, IKE_AUTH and the rest on 4500 behind the non-ESP
#     marker, pings (ESP-in-UDP), NAT keepalives, CREATE_CHILD_SA rekeying the Child SA and the IKE
#     SA, DPD (empty INFORMATIONAL), Delete of the Child SA and the IKE SA.
#   IKE SA "frag" over IPv6 (routed, no NAT; MOBIKE moves it to 4500): fragmentation = yes with charon.fragment_size
#     small, so IKE_AUTH travels as SKF fragments both ways (RFC 7383);
#     a virtual IP request (CP) and IPv4 + IPv6 traffic selectors.
#
# The charons log their SK_* keys (filelog ike = 4, lab only); the key lines
# are copied to strongswan-keys.txt so the tests can open the SK payloads.
#
# Usage (root): bash tests/data/capture-strongswan.sh [OUTDIR]
# Writes OUTDIR/strongswan-exchange.pcap and OUTDIR/strongswan-keys.txt
# (default: the directory of this script).
set -u
OUT=$(cd "${1:-$(dirname "$0")}" && pwd)
D=$(mktemp -d)
NSA=ikedtx-capa NSR=ikedtx-capr NSB=ikedtx-capb
PIDS=()

cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    for ns in $NSA $NSR $NSB; do ip netns del $ns 2>/dev/null; done
    rm -rf "$D"
}
trap cleanup EXIT

[ -x /usr/lib/ipsec/charon ] || { echo "missing /usr/lib/ipsec/charon (strongswan-charon)"; exit 1; }
command -v swanctl >/dev/null || { echo "missing swanctl (strongswan-swanctl)"; exit 1; }
command -v tshark >/dev/null || { echo "missing tshark"; exit 1; }

for ns in $NSA $NSR $NSB; do ip netns del $ns 2>/dev/null; ip netns add $ns; done
ip link add vcapa netns $NSA type veth peer name vcapra netns $NSR
ip link add vcapb netns $NSB type veth peer name vcaprb netns $NSR
ip -n $NSA addr add 192.0.2.1/24 dev vcapa
ip -n $NSR addr add 192.0.2.254/24 dev vcapra
ip -n $NSR addr add 198.51.100.254/24 dev vcaprb
ip -n $NSB addr add 198.51.100.2/24 dev vcapb
ip -n $NSA addr add 2001:db8:a::1/64 dev vcapa nodad
ip -n $NSR addr add 2001:db8:a::fe/64 dev vcapra nodad
ip -n $NSR addr add 2001:db8:b::fe/64 dev vcaprb nodad
ip -n $NSB addr add 2001:db8:b::2/64 dev vcapb nodad
for ns in $NSA $NSR $NSB; do ip -n $ns link set lo up; done
ip -n $NSA link set vcapa up; ip -n $NSB link set vcapb up
ip -n $NSR link set vcapra up; ip -n $NSR link set vcaprb up
ip -n $NSA route add default via 192.0.2.254
ip -n $NSB route add default via 198.51.100.254
ip -n $NSA -6 route add default via 2001:db8:a::fe
ip -n $NSB -6 route add default via 2001:db8:b::fe
ip netns exec $NSR sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
# The IPv4 path crosses a NAT, so "plain" really is NAT traversal.
ip netns exec $NSR nft add table ip nat
ip netns exec $NSR nft 'add chain ip nat post { type nat hook postrouting priority 100 ; }'
ip netns exec $NSR nft add rule ip nat post oifname vcaprb masquerade
ip -n $NSA addr add 10.1.0.1/32 dev lo
ip -n $NSB addr add 10.2.0.1/32 dev lo
ip -n $NSB addr add 2001:db8:2::1/128 dev lo

write_conf() { # name local4 remote4 local6 remote6 local_ts remote_ts
    local dir=$D/$1
    mkdir -p $dir
    (cd $dir && mkdir -p x509 x509ca x509ocsp x509aa x509ac x509crl pubkey private rsa ecdsa bliss pkcs8 pkcs12)
    cat > $dir/strongswan.conf <<EOF
charon {
  load = random nonce openssl pem pkcs1 pkcs8 x509 pubkey revocation constraints curve25519 gmp hmac kdf gcm sha1 sha2 aes attr kernel-libipsec kernel-netlink socket-default vici updown
  install_routes = yes
  fragment_size = 400
  keep_alive = 1s
  retransmit_tries = 2
  plugins {
    vici { socket = unix://$dir/charon.vici }
  }
  filelog {
    lab { path = $dir/charon.log
          default = 1
          ike = 4
          flush_line = yes
          append = no }
  }
  syslog { daemon { default = -1 } auth { default = -1 } }
}
EOF
}
write_conf a
write_conf b

cat > $D/a/swanctl.conf <<EOF
connections {
  plain {
    version = 2
    local_addrs = 192.0.2.1
    remote_addrs = 198.51.100.2
    proposals = aes256-sha256-x25519
    fragmentation = no
    dpd_delay = 3s
    local  { auth = psk
             id = plain@a.example }
    remote { auth = psk
             id = 198.51.100.2 }
    children {
      net {
        local_ts = 10.1.0.1/32
        remote_ts = 10.2.0.1/32
        esp_proposals = aes256-sha256
        start_action = none
      }
    }
  }
  frag {
    version = 2
    local_addrs = 2001:db8:a::1
    remote_addrs = 2001:db8:b::2
    proposals = aes256-sha256-x25519
    fragmentation = yes
    vips = 0.0.0.0, ::
    local  { auth = psk
             id = frag@a.example }
    remote { auth = psk
             id = 2001:db8:b::2 }
    children {
      net6 {
        remote_ts = 10.2.0.1/32, 2001:db8:2::1/128
        esp_proposals = aes256-sha256
        start_action = none
      }
    }
  }
}
secrets {
  ike-plain { id-a = plain@a.example
              id-b = 198.51.100.2
              secret = "lab-psk-0123456789" }
  ike-frag  { id-a = frag@a.example
              id-b = 2001:db8:b::2
              secret = "lab-psk-frag-98765" }
}
EOF

cat > $D/b/swanctl.conf <<EOF
connections {
  plain {
    version = 2
    local_addrs = 198.51.100.2
    proposals = aes256-sha256-x25519
    fragmentation = yes
    local  { auth = psk
             id = 198.51.100.2 }
    remote { auth = psk
             id = plain@a.example }
    children {
      net {
        local_ts = 10.2.0.1/32
        remote_ts = 10.1.0.1/32
        esp_proposals = aes256-sha256
      }
    }
  }
  frag {
    version = 2
    local_addrs = 2001:db8:b::2
    proposals = aes256-sha256-x25519
    fragmentation = yes
    pools = pool4, pool6
    local  { auth = psk
             id = 2001:db8:b::2 }
    remote { auth = psk
             id = frag@a.example }
    children {
      net6 {
        local_ts = 10.2.0.1/32, 2001:db8:2::1/128
        esp_proposals = aes256-sha256
      }
    }
  }
}
pools {
  pool4 { addrs = 10.3.0.0/28
          dns = 10.2.0.53 }
  pool6 { addrs = 2001:db8:3::/120 }
}
secrets {
  ike-plain { id-a = plain@a.example
              id-b = 198.51.100.2
              secret = "lab-psk-0123456789" }
  ike-frag  { id-a = frag@a.example
              id-b = 2001:db8:b::2
              secret = "lab-psk-frag-98765" }
}
EOF

start_charon() { # name ns
    local dir=$D/$1
    ip netns exec $2 unshare -m sh -c \
      "mount -t tmpfs tmpfs /run && STRONGSWAN_CONF=$dir/strongswan.conf exec /usr/lib/ipsec/charon" \
      > $dir/charon.out 2>&1 &
    PIDS+=($!)
    for i in $(seq 50); do [ -S $dir/charon.vici ] && break; sleep 0.1; done
    [ -S $dir/charon.vici ] || { echo "charon $1 did not start"; cat $dir/charon.out; exit 1; }
    swanctl --load-all --file $dir/swanctl.conf --uri unix://$dir/charon.vici > $dir/load.out 2>&1 \
      || { echo "load failed for $1"; cat $dir/load.out; exit 1; }
}
sa() { timeout 20 swanctl "$@" --uri unix://$D/a/charon.vici 2>&1 | grep -v "^plugin .*failed to load"; }

ip netns exec $NSA tshark -q -i vcapa -F pcap -w $D/capture.pcap \
    -f 'udp port 500 or udp port 4500' > $D/tshark.out 2>&1 &
TSHARK=$!; PIDS+=($TSHARK)
for i in $(seq 50); do grep -q 'Capture started' $D/tshark.out 2>/dev/null && break; sleep 0.1; done

start_charon a $NSA
start_charon b $NSB

set -x
sa --initiate --child net
ip netns exec $NSA ping -c 2 -i 0.2 -W 2 -I 10.1.0.1 10.2.0.1
sa --rekey --child net
sleep 0.5
sa --rekey --ike plain
sleep 5      # DPD (dpd_delay 3s, no traffic) and NAT keepalives (keep_alive 1s)
sa --initiate --child net6
sa --list-sas
sa --terminate --child net
sleep 0.5
sa --terminate --ike plain
sa --terminate --ike frag
set +x
sleep 1.5
kill -INT $TSHARK; wait $TSHARK 2>/dev/null

cp $D/capture.pcap "$OUT/strongswan-exchange.pcap"
# charon's key dumps ("Sk_ei secret => 32 bytes @ 0x...", then hex lines)
# become one line per IKE SA: "SK_ei SK_er SK_ai SK_ar" in hex.
python3 - $D/a/charon.log > "$OUT/strongswan-keys.txt" <<'PY'
import re, sys
keys, name, out = {}, None, []
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"Sk_(\w\w) secret =>", line)
    if m:
        name = m.group(1)
        keys[name] = ""
        continue
    m = re.search(r"\[IKE\]\s+\d+: ((?:[0-9A-F]{2} )+)", line)
    if m and name:
        keys[name] += m.group(1).replace(" ", "").lower()
        continue
    name = None
    if all(k in keys for k in ("ei", "er", "ai", "ar")):
        out.append(" ".join(keys[k] for k in ("ei", "er", "ai", "ar")))
        keys = {}
if all(k in keys for k in ("ei", "er", "ai", "ar")):
    out.append(" ".join(keys[k] for k in ("ei", "er", "ai", "ar")))
print("# SK_ei SK_er SK_ai SK_ar (AES-CBC-256, HMAC-SHA2-256-128), one IKE SA a line")
print("\n".join(out))
PY
tshark -r "$OUT/strongswan-exchange.pcap" 2>/dev/null
echo "wrote $OUT/strongswan-exchange.pcap and $OUT/strongswan-keys.txt"
