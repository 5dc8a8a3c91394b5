#!/usr/bin/env bash
# make demo: the main job end to end.  A local TLS registry with a
# password, a Horizon exchange simulator and a podman service, all on this
# machine; a signed service (and the one it requires) published to the
# exchange with images pinned by digest, as hzn does; the agent run once,
# handing the images to podman; the registry stopped; the service's
# container started by the very name its deployment gives.
set -eu
source "$(dirname "$0")/e2e/lib.sh"
pre_cleanup() { umount_T; }

say() { printf '\n== %s\n' "$*"; }
say "a registry on 127.0.0.1 with TLS and a password, an exchange simulator, podman as the node's runtime"
setup_pki demo demo-password
PR=$(free_port)
start_registry reg "$PR" htpasswd
R=127.0.0.1:$PR
start_exchange_sim
start_podman "$T/podman"
echo "registry https://$R, exchange $SIM/v1, podman at $PODMAN_SOCK"

say "two multi-arch images pushed with skopeo"
for n in web db; do
	python3 "$TOP/tests/e2e/mkimage.py" index "$T/img-$n" --tag 1.0 --busybox --note "$n on " \
		--cmd '["/bin/sh", "-c", "echo \"hello from the edge: $(cat /etc/edgefetch-note), started offline\""]' \
		--platform linux/amd64 --platform linux/arm64/v8 --platform linux/arm/v7 >/dev/null
	push "$T/img-$n:1.0" "$R/edge/$n:1.0" --dest-creds demo:demo-password --all
	echo "$R/edge/$n:1.0"
done

say "services published like 'hzn exchange service publish': pinned by digest, signed RSA-PSS by openssl"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 -out "$T/publisher.key" 2>/dev/null
mkdir -p "$T/trust" "$T/certs.d/$R"
openssl pkey -in "$T/publisher.key" -pubout -out "$T/trust/publisher.pem"
cp "$T/ca/ca.crt" "$T/certs.d/$R/"
DB=$(pub service --org demo --url example.org.db --version 1.4.0 --arch amd64 --image "$R/edge/db:1.0" \
	--key "$T/publisher.key" --creds demo:demo-password --cert-dir "$T/skcerts")
WEB=$(pub service --org demo --url example.org.web --version 2.0.0 --arch amd64 --image "$R/edge/web:1.0" \
	--key "$T/publisher.key" --creds demo:demo-password --cert-dir "$T/skcerts" \
	--requires "demo/example.org.db/[1.0.0,2.0.0)")
for id in "$DB" "$WEB"; do pub dockauth --service-id "$id" --registry "$R" --username demo --token demo-password; done
pub pattern --org demo --name edge-pattern --service demo/example.org.web/2.0.0/amd64 >/dev/null
pub node --org demo --id pi-0042 --token node-secret --pattern demo/edge-pattern --arch amd64 >/dev/null
echo "pattern demo/edge-pattern: $WEB (requires $DB)"

say "the node's configuration (/etc/default/edgefetch on a device)"
cat >"$T/edgefetch.conf" <<CONF
HZN_EXCHANGE_URL=$SIM/v1
HZN_ORG_ID=demo
HZN_DEVICE_ID=pi-0042
HZN_EXCHANGE_NODE_AUTH=pi-0042:node-secret
HZN_MGMT_HUB_CERT_PATH=$T/ca/ca.crt
EDGEFETCH_STORE=$T/store
EDGEFETCH_TRUST_DIR=$T/trust
EDGEFETCH_CERTS_DIR=$T/certs.d
EDGEFETCH_RUNTIME=podman:$PODMAN_SOCK
CONF
sed 's/node-secret/********/' "$T/edgefetch.conf"

say "edgefetch agent --once"
"$EF" agent --config "$T/edgefetch.conf" --once
echo "exit $?"
say "edgefetch status"
"$EF" status --config "$T/edgefetch.conf"
say "the content store"
(cd "$T/store" && find blobs -type f | sort && du -sh blobs | sed 's/^/total /')

IMAGE=$("$EF" status --config "$T/edgefetch.conf" --json |
	jq -r '.services[] | select(.url == "example.org.web") | .images[0].reference')

say "the publisher's deployment is tampered with: the agent refuses it (exit 5)"
pub service --org demo --url example.org.web --version 2.0.0 --arch amd64 --image "$IMAGE" \
	--key "$T/publisher.key" --bad-signature --requires "demo/example.org.db/[1.0.0,2.0.0)" >/dev/null
rc=0
"$EF" agent --config "$T/edgefetch.conf" --once || rc=$?
echo "exit $rc"
[ "$rc" = 5 ]

say "the registry is stopped; podman starts the service by the image name its deployment gives"
kill "$reg_PID"
wait "$reg_PID" 2>/dev/null || true
echo "+ podman run $IMAGE"
$PODMAN $PODMAN_RUN "$IMAGE"
