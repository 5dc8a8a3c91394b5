/* deliver.h: one image, from the registry to where it is wanted: pulled
 * into the store (verified), then written out (--output) and handed to a
 * runtime.  A store blob found damaged on the way out is removed by the
 * store; it is then fetched again and the delivery tried once more.
 * Shared by `edgefetch pull` and the agent. */
#ifndef EF_DELIVER_H
#define EF_DELIVER_H

#include "../registry/output/export.h"
#include "../registry/pull.h"
#include "runtime/runtime.h"

struct delivery_opts
{
  const struct reg_platform *platform;
  const vfy_cosign_key *cosign_key; /* or NULL */
  reg_progress_fn progress;
  reg_stall_fn stalled; /* the link is down, or back */
  void *payload;
  const char *out_path; /* or NULL */
  enum reg_export_format out_fmt;
  const struct runtime_spec *runtime; /* or NULL */
  bool keep_layers; /* else a runtime that holds the image has its layers dropped from the store */
};

struct delivery
{
  struct reg_pull_result *res;
  struct runtime_result handoff; /* when a runtime was asked for */
};

int agent_deliver (reg_client *c, reg_store *s, const struct reg_ref *ref, const struct delivery_opts *o,
                   struct delivery *out, ef_err **err);
void agent_delivery_dispose (struct delivery *d);

#endif
