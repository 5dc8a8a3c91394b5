/* gc_cmd.c: edgefetch gc. */
#include <getopt.h>
#include <stdio.h>

#include "../../common/paths.h"
#include "../../common/util.h"
#include "../../registry/store/store.h"
#include "cli.h"

static const char gc_usage[] = "usage: edgefetch gc [--store DIR]\n"
                               "\n"
                               "  Remove every blob that no image recorded in the store refers to.\n"
                               "  Partial downloads (STORE/ingest) are kept so that pulls can resume,\n"
                               "  unless their blob is in the store or no byte came for 7 days.\n"
                               "  Temporary files a killed run or a power cut left (10 minutes old or\n"
                               "  more) are removed.\n";

int
cmd_gc (int argc, char **argv)
{
  static const struct option longopts[] = {
    { "store", required_argument, NULL, 's' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
  };
  const char *store_dir = cli_env ("EDGEFETCH_STORE", EF_DEFAULT_STORE);
  cleanup_err ef_err *err = NULL;
  struct reg_gc_stats st;
  struct reg_recovery rec = { 0 };
  reg_store *s = NULL;
  int c, rc;

  optind = 1;
  opterr = 0;
  while ((c = getopt_long (argc, argv, "+:h", longopts, NULL)) != -1)
    switch (c)
      {
      case 's': store_dir = optarg; break;
      case 'h': fputs (gc_usage, stdout); return 0;
      default: return cli_bad_option ("gc", c, argv);
      }
  if (optind != argc)
    return cli_usage_error ("gc", "no arguments expected");
  rc = reg_store_open (&s, store_dir, &err);
  if (rc == 0)
    reg_store_recover (s, &rec);
  if (rc == 0)
    rc = reg_store_gc (s, &st, &err);
  reg_store_free (s);
  if (rc < 0)
    return cli_report ("gc", err);
  printf ("removed %lld blobs (%.1f MiB), kept %lld\n", (long long) st.blobs_removed,
          (double) st.bytes_removed / (1 << 20), (long long) st.blobs_kept);
  if (rec.tmp + rec.parts + rec.records + rec.handoffs > 0)
    printf ("removed what a crash left: %d temporary files, %d partial downloads, %d piece records, %d handoff "
            "directories\n",
            rec.tmp, rec.parts, rec.records, rec.handoffs);
  return 0;
}
