/* reconcile.c: see reconcile.h. */
#include <string.h>

#include "../common/util.h"
#include "../registry/ref.h"
#include "reconcile.h"
#include "runtime/runtime.h"

static bool
in_set (json_t *arr, const char *a, const char *b)
{
  json_t *e;
  size_t i;

  json_array_foreach (arr, i, e)
  {
    const char *x = json_string_value (json_array_get (e, 0)), *y = json_string_value (json_array_get (e, 1));
    if (x && y && strcmp (x, a) == 0 && strcmp (y, b ? b : "") == 0)
      return true;
  }
  return false;
}

static json_t *
state_array (json_t *state, const char *key)
{
  json_t *a = json_object_get (state, key);
  if (!json_is_array (a))
    json_object_set_new (state, key, a = json_array ());
  return a;
}

/* What this sync wants (want_h, want_r), added to what the agent created. */
static void
note_wanted (const struct agent_config *cfg, json_t *state, json_t *services, json_t *want_h, json_t *want_r)
{
  json_t *handed = state_array (state, "handed"), *recorded = state_array (state, "recorded"), *svc, *img;
  size_t i, k;

  json_array_foreach (services, i, svc)
    json_array_foreach (json_object_get (svc, "images"), k, img)
  {
    struct reg_ref *ref = NULL;
    json_t *h = json_object_get (img, "handoff");
    const char *name = json_string_value (json_object_get (h, "name"));
    if (reg_ref_parse (&ref, json_string_value (json_object_get (img, "reference")), NULL) == 0)
      {
        char *canon = reg_ref_string (ref);
        json_array_append_new (want_r, json_pack ("[s, s]", canon, ""));
        if (!in_set (recorded, canon, ""))
          json_array_append_new (recorded, json_pack ("[s, s]", canon, ""));
        free (canon);
        reg_ref_free (ref);
      }
    if (name && cfg->runtime)
      {
        /* containerd keeps each name as a record of its own: all of ours go */
        const char *names[3] = { name, NULL, NULL };
        struct runtime_spec rt;
        if (runtime_parse (&rt, cfg->runtime, NULL) == 0 && rt.kind == RT_CONTAINERD)
          {
            names[1] = json_string_value (json_object_get (h, "pinned"));
            if (strcmp (rt.ns, "k8s.io") == 0)
              names[2] = json_string_value (json_object_get (img, "config_digest"));
          }
        runtime_dispose (&rt);
        for (int n = 0; n < 3; n++)
          {
            if (names[n] == NULL)
              continue;
            json_array_append_new (want_h, json_pack ("[s, s]", cfg->runtime, names[n]));
            if (json_is_true (json_object_get (h, "sent")) && !in_set (handed, cfg->runtime, names[n]))
              json_array_append_new (handed, json_pack ("[s, s]", cfg->runtime, names[n]));
          }
      }
  }
}

/* Untag what the agent handed over and nothing wants; keep what fails. */
static void
prune_handed (json_t *state, json_t *want_h)
{
  json_t *keep = json_array (), *e;
  size_t i;

  json_array_foreach (state_array (state, "handed"), i, e)
  {
    const char *spec = json_string_value (json_array_get (e, 0)), *name = json_string_value (json_array_get (e, 1));
    struct runtime_spec rt;
    bool gone = false;
    if (!spec || !name || in_set (want_h, spec, name))
      {
        json_array_append (keep, e);
        continue;
      }
    if (runtime_parse (&rt, spec, NULL) == 0)
      {
        gone = runtime_remove (&rt, name, NULL) == 0;
        runtime_dispose (&rt);
      }
    if (!gone)
      json_array_append (keep, e); /* try again next time */
  }
  json_object_set_new (state, "handed", keep);
}

static void
prune_recorded (reg_store *store, json_t *state, json_t *want_r)
{
  json_t *keep = json_array (), *e;
  struct reg_gc_stats st;
  size_t i;

  json_array_foreach (state_array (state, "recorded"), i, e)
  {
    const char *name = json_string_value (json_array_get (e, 0));
    if (!name || in_set (want_r, name, "") || reg_store_unrecord (store, name, NULL) < 0)
      json_array_append (keep, e);
  }
  json_object_set_new (state, "recorded", keep);
  if (reg_store_gc (store, &st, NULL) == 0)
    json_object_set_new (state, "last_gc", json_pack ("{s:I, s:I}", "blobs_removed", (json_int_t) st.blobs_removed,
                                                      "bytes_removed", (json_int_t) st.bytes_removed));
}

void
agent_reconcile (const struct agent_config *cfg, reg_store *store, json_t *state, json_t *services, bool complete)
{
  json_t *want_h = json_array (), *want_r = json_array ();

  note_wanted (cfg, state, services, want_h, want_r);
  if (complete && cfg->prune)
    {
      prune_handed (state, want_h);
      prune_recorded (store, state, want_r);
    }
  json_decref (want_h);
  json_decref (want_r);
}
