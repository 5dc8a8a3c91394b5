/* containerd's hosts.toml subset (registry/remote/hosts_toml.c), the one hand-written parser. */
#include <stdint.h>
#include <stdlib.h>

#include "../../registry/remote/hosts.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  reg_hosts *h = NULL;

  if (reg_hosts_parse (&h, (const char *) data, size, "/etc/edgefetch/certs.d/r.example", NULL) == 0)
    {
      for (size_t i = 0; i < reg_hosts_count (h); i++)
        {
          const struct reg_endpoint *ep = reg_hosts_get (h, i);
          if (ep->path == NULL || ep->scheme == NULL || (ep->host == NULL && !ep->server))
            abort ();
        }
      reg_hosts_free (h);
    }
  return 0;
}
