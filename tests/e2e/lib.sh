# lib.sh: helpers the end-to-end tests and the demo share.
# Everything lives under $T (a fresh temp dir) and on 127.0.0.1 ports
# chosen at run time; every process started here is stopped on exit.

TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
EF=${EF:-$TOP/edgefetch}
# Debian's python3 carries python3-jwt; a python3 earlier in PATH may not.
PY=/usr/bin/python3
T=$(mktemp -d "${TMPDIR:-/tmp}/edgefetch-test.XXXXXX")
PIDS=()

cleanup() {
	local rc=$? p
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	if declare -F pre_cleanup >/dev/null; then pre_cleanup; fi
	if [ -n "${KEEP_TMP:-}" ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# fsrec_build: tests/crash's recorder of file-system operations, built into
# $T/fsrec.so (FSREC_SO); ASan's runtime lets it come first in the preloads.
fsrec_build() {
	FSREC_SO=$T/fsrec.so
	cc -std=gnu11 -O1 -shared -fPIC -o "$FSREC_SO" "$TOP/tests/crash/fsrec.c" -ldl -lpthread || return 1
	export FSREC_SO ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0
}

free_port() {
	"$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() { # wait_port PORT [SECONDS]
	local i
	for i in $(seq 1 $((${2:-10} * 20))); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "nothing listens on port $1" >&2
	return 1
}

# make_ca DIR: a CA and a server certificate for 127.0.0.1 and localhost (and
# 10.213.0.2, the far end of tests/link.py's link for a client inside it).
make_ca() {
	local d=$1
	mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=edgefetch test CA" \
		-keyout "$d/ca.key" -out "$d/ca.crt" -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$d/server.key" \
		-out "$d/server.csr" 2>/dev/null
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
		-extfile <(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.213.0.2\nextendedKeyUsage=serverAuth\n') \
		-out "$d/server.crt" 2>/dev/null
}

# make_client_cert DIR NAME: a client certificate signed by DIR's CA.
make_client_cert() {
	local d=$1 n=$2
	openssl req -newkey rsa:2048 -nodes -subj "/CN=$n" -keyout "$d/$n.key" -out "$d/$n.csr" 2>/dev/null
	openssl x509 -req -in "$d/$n.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
		-extfile <(printf 'extendedKeyUsage=clientAuth\n') -out "$d/$n.cert" 2>/dev/null
}

# start_registry NAME PORT AUTH [EXTRA]: AUTH is "htpasswd", "token:REALM_PORT" (realm on localhost),
# "tokenip:REALM_PORT" (realm on 127.0.0.1, the registry's own address) or "none";
# EXTRA is "clientcas" (require client certificates) or more YAML.
# REG_ACCESSLOG_OFF=false: the access log goes to $T/NAME/log.
start_registry() {
	local name=$1 port=$2 auth=$3 extra=${4:-} d=$T/$1
	mkdir -p "$d/data"
	{
		echo "version: 0.1"
		echo "log: {level: error, accesslog: {disabled: ${REG_ACCESSLOG_OFF:-true}}}"
		echo "storage: {filesystem: {rootdirectory: $d/data}, delete: {enabled: true}}"
		echo "http:"
		echo "  addr: 127.0.0.1:$port"
		if [ "$extra" = clientcas ]; then
			echo "  tls: {certificate: $T/ca/server.crt, key: $T/ca/server.key, clientcas: [$T/ca/ca.crt]}"
			extra=
		else
			echo "  tls: {certificate: $T/ca/server.crt, key: $T/ca/server.key}"
		fi
		case $auth in
		htpasswd) echo "auth: {htpasswd: {realm: edgefetch-test, path: $T/htpasswd}}" ;;
		token:*) echo "auth: {token: {realm: 'https://localhost:${auth#token:}/token', service: edgefetch-test, issuer: edgefetch-test-issuer, rootcertbundle: $T/ca/ca.crt}}" ;;
		tokenip:*) echo "auth: {token: {realm: 'https://127.0.0.1:${auth#tokenip:}/token', service: edgefetch-test, issuer: edgefetch-test-issuer, rootcertbundle: $T/ca/ca.crt}}" ;;
		esac
		[ -n "$extra" ] && echo "$extra"
	} >"$d/config.yml"
	docker-registry serve "$d/config.yml" >"$d/log" 2>&1 &
	PIDS+=($!)
	eval "${name}_PID=$!"
	wait_port "$port"
}

# start_pull_through NAME PORT UPSTREAM USER PASS: distribution as a pull-through cache of
# https://UPSTREAM (which it reaches as USER), anonymous to its own clients, over TLS.
start_pull_through() {
	local d=$T/$1
	mkdir -p "$d/data"
	cat >"$d/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $d/data}}
http: {addr: 127.0.0.1:$2, tls: {certificate: $T/ca/server.crt, key: $T/ca/server.key}}
proxy: {remoteurl: https://$3, username: $4, password: $5}
EOF
	SSL_CERT_FILE=$T/ca/ca.crt docker-registry serve "$d/config.yml" >"$d/log" 2>&1 &
	PIDS+=($!)
	wait_port "$2"
}

# push_estargz LAYOUT:TAG DEST [skopeo args...]: the image converted to eStargz by ctr-remote
# (stargz-snapshotter) in a containerd of our own (started on first use), then pushed with skopeo.
push_estargz() {
	local src=$1 dst=$2 d=$T/estargz n
	shift 2
	if [ ! -S "$d/sock" ]; then
		mkdir -p "$d"
		printf 'version = 2\nroot = "%s"\nstate = "%s"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s"\n' \
			"$d/root" "$d/state" "$d/sock" >"$d/config.toml"
		containerd --config "$d/config.toml" >"$d/log" 2>&1 &
		PIDS+=($!)
		for _ in $(seq 100); do [ -S "$d/sock" ] && break; sleep 0.1; done
	fi
	n=example.com/estargz:$((++ESTARGZ_N))
	skopeo copy -q "oci:$src" "oci-archive:$d/in.tar:$n" &&
		ctr -a "$d/sock" images import --base-name example.com/estargz "$d/in.tar" >/dev/null &&
		ctr-remote -a "$d/sock" image convert --estargz --oci "$n" "$n-esgz" >/dev/null &&
		ctr -a "$d/sock" images export "$d/out.tar" "$n-esgz" &&
		skopeo copy -q --dest-cert-dir "$T/skcerts" "$@" "oci-archive:$d/out.tar" "docker://$dst"
}
ESTARGZ_N=0

# start_token_server PORT [ARGS...]: users come from $T/users (user:pass lines).
start_token_server() {
	local port=$1
	shift
	"$PY" "$TOP/tests/e2e/tokenserver.py" --port "$port" --cert "$T/ca/server.crt" --key "$T/ca/server.key" \
		--ca-cert "$T/ca/ca.crt" --ca-key "$T/ca/ca.key" --users "$T/users" --log "$T/token.log" "$@" \
		>"$T/token.out" 2>&1 &
	PIDS+=($!)
	wait_port "$port"
}

# setup_pki USER PASS: CA, certs, htpasswd and users file; skopeo's cert dir in $T/skcerts.
setup_pki() {
	make_ca "$T/ca"
	htpasswd -Bbn "$1" "$2" >"$T/htpasswd" 2>/dev/null
	echo "$1:$2" >"$T/users"
	mkdir -p "$T/skcerts"
	cp "$T/ca/ca.crt" "$T/skcerts/ca.crt"
}

# push LAYOUT:TAG DEST [skopeo args...]: push an OCI layout to a registry with skopeo.
push() {
	local src=$1 dst=$2
	shift 2
	skopeo copy -q --dest-cert-dir "$T/skcerts" "$@" "oci:$src" "docker://$dst" >/dev/null
}

# start_exchange_sim [tls]: the Horizon exchange simulator on a free port, plain HTTP as the
# exchange and the all-in-1 hub serve it (HTTPS with "tls"); sets SIM and SIM_PORT.
# SIM_REDIRECT_PORT set: that port redirects every request to it, as an ingress would.
start_exchange_sim() {
	local port scheme=http
	port=$(free_port)
	[ "${1:-}" = tls ] && scheme=https
	"$PY" "$TOP/tests/e2e/exchange_sim.py" --port "$port" ${1:+--tls "$T/ca/server.crt" "$T/ca/server.key"} \
		${SIM_REDIRECT_PORT:+--redirect-port "$SIM_REDIRECT_PORT"} >>"$T/sim.log" 2>&1 &
	PIDS+=($!)
	SIM=$scheme://127.0.0.1:$port
	SIM_PORT=$port
	wait_port "$port"
}

# pub WHAT ARGS...: publish to the simulator as hzn would (tests/e2e/hzn_publish.py).
pub() { "$PY" "$TOP/tests/e2e/hzn_publish.py" "$1" --sim "$SIM" --ca "$T/ca/ca.crt" "${@:2}"; }

# umount_T: runtimes leave mounts under $T; clear them before it goes.
umount_T() {
	awk -v t="$T" 'index($2, t) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
	return 0
}

# start_podman DIR: a podman API service with its own directories under DIR;
# sets PODMAN (the CLI on those directories), PODMAN_SOCK, PODMAN_PID and PODMAN_RUN
# (what `podman run` needs on these machines).
start_podman() {
	local d=$1 i
	mkdir -p "$d"
	PODMAN="podman --root $d/root --runroot $d/run --tmpdir $d/tmp --cgroup-manager=cgroupfs --events-backend=file"
	PODMAN_SOCK=$d/podman.sock
	PODMAN_RUN="run --rm --runtime runc --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
	$PODMAN system service --time=0 "unix://$PODMAN_SOCK" >>"$d/podman.log" 2>&1 &
	PODMAN_PID=$!
	PIDS+=($!)
	for i in $(seq 100); do
		curl -sf --unix-socket "$PODMAN_SOCK" http://d/_ping >/dev/null && return 0
		sleep 0.1
	done
	echo "podman did not start: $(tail -n 3 "$d/podman.log")" >&2
	return 1
}

# start_dockerd DIR: a dockerd of its own under DIR (no network set-up of
# the host's touched); sets DOCKERD (its PID), DOCKER_SOCK and DOCKER (the CLI
# on that socket).  It can be started again after a kill.
start_dockerd() {
	local d=$1
	mkdir -p "$d/docker"
	[ -e "$d/daemon.json" ] || echo '{}' >"$d/daemon.json"
	DOCKER_SOCK=$d/docker.sock
	DOCKER="docker -H unix://$DOCKER_SOCK"
	rm -f "$DOCKER_SOCK"
	dockerd --data-root "$d/docker/data" --exec-root "$d/docker/exec" --pidfile "$d/docker/pid" \
		-H "unix://$DOCKER_SOCK" --iptables=false --ip6tables=false --bridge=none --ip-masq=false \
		--config-file "$d/daemon.json" >>"$d/dockerd.log" 2>&1 &
	DOCKERD=$!
	PIDS+=($DOCKERD)
}

# start_containerd DIR: a containerd of its own under DIR, without its CRI
# plugin; sets CONTAINERD (its PID) and CONTAINERD_SOCK.
start_containerd() {
	local d=$1/cd
	mkdir -p "$d"
	CONTAINERD_SOCK=$d/containerd.sock
	printf 'version = 2\nroot = "%s"\nstate = "%s"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "%s"\n' \
		"$d/root" "$d/state" "$CONTAINERD_SOCK" >"$d/config.toml"
	containerd --config "$d/config.toml" >>"$1/containerd.log" 2>&1 &
	CONTAINERD=$!
	PIDS+=($CONTAINERD)
}

# wait_runtimes: both of them answer (15 s at most).
wait_runtimes() {
	local i
	for i in $(seq 150); do
		curl -sf --unix-socket "$DOCKER_SOCK" http://d/_ping >/dev/null && [ -S "$CONTAINERD_SOCK" ] && return 0
		sleep 0.1
	done
	return 1
}
