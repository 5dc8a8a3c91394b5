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

void
agent_state_exchange (json_t *state, bool ok, const char *error)
{
  cleanup_free char *stamp = agent_now_utc ();
  json_t *ex = json_object_get (state, "exchange");

  if (!json_is_object (ex))
    json_object_set_new (state, "exchange", ex = json_object ());
  if (!ok && !json_is_false (json_object_get (ex, "ok")))
    json_object_set_new (ex, "down_since", json_string (stamp));
  if (ok)
    json_object_del (ex, "down_since");
  json_object_set_new (ex, "ok", json_boolean (ok));
  json_object_set_new (ex, "last_error", error ? json_string (error) : json_null ());
  json_object_set_new (ex, ok ? "last_contact" : "last_failure", json_string (stamp));
}

void
agent_state_stopped (json_t *state, int code, const char *reason)
{
  cleanup_free char *stamp = agent_now_utc ();
  json_t *old = json_object_get (state, "stopped");

  if (reason == NULL)
    {
      json_object_del (state, "stopped");
      return;
    }
  /* the same refusal again keeps the time it began */
  if (json_is_object (old) && json_integer_value (json_object_get (old, "code")) == code
      && json_is_string (json_object_get (old, "since")))
    {
      json_object_set_new (old, "reason", json_string (reason));
      return;
    }
  json_object_set_new (state, "stopped", json_pack ("{s:i, s:s, s:s}", "code", code, "reason", reason, "since", stamp));
}
