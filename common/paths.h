/* paths.h: where edgefetch keeps things by default, in one place. */
#ifndef EF_PATHS_H
#define EF_PATHS_H

#define EF_DEFAULT_STORE "/var/lib/edgefetch"
#define EF_DEFAULT_CONFIG "/etc/default/edgefetch"
#define EF_DEFAULT_TRUST_DIR "/etc/edgefetch/trust"
/* anax's HZN_VAR_BASE default, where `hzn key import` puts keys when it is unset */
#define EF_ANAX_VAR_BASE "/var/horizon"
/* Per-host registry trust, searched in this order (docker's layout). */
#define EF_DEFAULT_CERTS_DIRS { "/etc/edgefetch/certs.d", "/etc/docker/certs.d", "/etc/containers/certs.d", "/etc/containerd/certs.d", NULL }

#endif
