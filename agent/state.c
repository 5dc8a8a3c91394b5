/* state.c: see state.h. */
#include <string.h>
#include <time.h>

#include "../common/file.h"
#include "../common/json.h"
#include "../common/util.h"
#include "state.h"

#define STATE_MAX (16u << 20)

json_t *
agent_state_load (const char *store)
{
  cleanup_free char *path = xasprintf ("%s/state.json", store);
  cleanup_free char *text = NULL;
  size_t len;
  json_t *j = NULL;

  if (ef_read_file (path, STATE_MAX, &text, &len) == 0)
    j = ef_json_parse (text, len, STATE_MAX, NULL);
  if (!json_is_object (j))
    {
      json_decref (j);
      j = json_pack ("{s:i}", "version", 1);
    }
  return j;
}

int
agent_state_save (const char *store, json_t *state, ef_err **err)
{
  cleanup_free char *path = xasprintf ("%s/state.json", store);
  cleanup_free char *text = json_dumps (state, JSON_INDENT (1) | JSON_SORT_KEYS);
  int rc = ef_atomic_write (path, text, strlen (text), 0644, err);

  if (rc < 0)
    ef_err_wrap (err, "save the agent's state");
  return rc;
}

char *
agent_now_utc (void)
{
  char buf[32];
  time_t t = time (NULL);
  struct tm tm;

  gmtime_r (&t, &tm);
  strftime (buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return xstrdup (buf);
}
