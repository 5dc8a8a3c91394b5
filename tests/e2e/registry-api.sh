# registry-api.sh: pushing by hand through the distribution API with curl.
# Needs reg, repo, creds and ca set by the caller.
c() { curl -sSf --cacert "$ca" -u "$creds" "$@"; }

# upload FILE: a monolithic blob upload; prints the blob's digest.
upload() {
	local f=$1 d loc
	d=sha256:$(sha256sum <"$f" | cut -c1-64)
	loc=$(c -X POST -D - -o /dev/null "https://$reg/v2/$repo/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
	case $loc in http*) ;; *) loc=https://$reg$loc ;; esac
	case $loc in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
	c -X PUT -H "Content-Type: application/octet-stream" --data-binary "@$f" "$loc" >/dev/null
	echo "$d"
}
