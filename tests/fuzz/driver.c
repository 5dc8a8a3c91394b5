/* driver.c: replay fuzz inputs without libFuzzer (after libgit2's
 * standalone_driver): each argument is a file, or a directory of files. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../common/file.h"
#include "../../common/util.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
run_file (const char *path)
{
  char *buf;
  size_t len;

  if (ef_read_file (path, 16u << 20, &buf, &len) < 0)
    {
      fprintf (stderr, "fuzz driver: cannot read %s\n", path);
      return -1;
    }
  LLVMFuzzerTestOneInput ((const uint8_t *) buf, len);
  free (buf);
  return 0;
}

int
main (int argc, char **argv)
{
  int n = 0;

  for (int i = 1; i < argc; i++)
    {
      struct stat st;
      if (stat (argv[i], &st) < 0)
        continue;
      if (S_ISDIR (st.st_mode))
        {
          DIR *d = opendir (argv[i]);
          struct dirent *de;
          while (d && (de = readdir (d)) != NULL)
            {
              char *p;
              if (de->d_name[0] == '.')
                continue;
              p = xasprintf ("%s/%s", argv[i], de->d_name);
              if (stat (p, &st) == 0 && S_ISREG (st.st_mode) && run_file (p) == 0)
                n++;
              free (p);
            }
          if (d)
            closedir (d);
        }
      else if (run_file (argv[i]) == 0)
        n++;
    }
  printf ("%s: %d inputs replayed\n", argv[0], n);
  return n > 0 ? 0 : 1;
}
