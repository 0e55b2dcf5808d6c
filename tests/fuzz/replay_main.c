/*
 * replay_main.c - without libFuzzer, a fuzz driver runs each file named on
 * the command line (or each file in a directory) once: the committed seed
 * corpus becomes a regression test under ctest and the sanitizers.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        if (f != NULL)
            fclose(f);
        return 1;
    }
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read %s\n", path);
        free(buf);
        fclose(f);
        return 1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int i, failed = 0, count = 0;

    for (i = 1; i < argc; i++) {
        struct stat st;
        struct dirent *e;
        DIR *d;

        if (stat(argv[i], &st) != 0 || !S_ISDIR(st.st_mode)) {
            failed |= run_file(argv[i]);
            count++;
            continue;
        }
        if ((d = opendir(argv[i])) == NULL)
            return 1;
        while ((e = readdir(d)) != NULL) {
            char path[4096];

            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            failed |= run_file(path);
            count++;
        }
        closedir(d);
    }
    printf("%d passed, %d failed\n", failed ? count - 1 : count, failed);
    return failed;
}
