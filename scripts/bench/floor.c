/* The compiled floor of one scrape (issue 12): the CPU it takes merely to read the /proc and
 * /sys files one agent scrape reads, through descriptors kept open (as src/collector/fsio.rs
 * does), with pread() from offset 0 until it returns 0.
 *
 *   floor FILE_LIST PASSES
 *
 * FILE_LIST holds one path a line (scripts/bench-vs-node-exporter.sh takes it from strace of
 * one agent scrape). Every path is opened once (O_RDONLY|O_NONBLOCK|O_CLOEXEC, as fsio);
 * one that cannot be opened is counted and skipped. Then PASSES passes read every file whole;
 * prints "files=N skipped=M bytes=B cpu_per_pass=S" with S the process CPU time (user +
 * system, getrusage) per pass, in seconds. Build: cc -O2 -o floor floor.c */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static char buf[1 << 20];

static long read_all(int fd) {
    long total = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, total);
        if (n < 0) {
            if (errno == EINTR) continue;
            return total;
        }
        if (n == 0) return total;
        total += n;
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s FILE_LIST PASSES\n", argv[0]);
        return 2;
    }
    long passes = atol(argv[2]);
    FILE *list = fopen(argv[1], "r");
    if (!list || passes <= 0) {
        fprintf(stderr, "floor: cannot read %s or bad PASSES\n", argv[1]);
        return 2;
    }
    int *fds = NULL;
    size_t nfds = 0, cap = 0, skipped = 0;
    char line[4096];
    while (fgets(line, sizeof line, list)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0]) continue;
        int fd = open(line, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            skipped++;
            continue;
        }
        if (nfds == cap) {
            cap = cap ? cap * 2 : 256;
            fds = realloc(fds, cap * sizeof *fds);
            if (!fds) return 2;
        }
        fds[nfds++] = fd;
    }
    fclose(list);
    long bytes = 0;
    for (size_t i = 0; i < nfds; i++) bytes += read_all(fds[i]); /* warm-up pass */
    double t0 = cpu_now();
    for (long p = 0; p < passes; p++)
        for (size_t i = 0; i < nfds; i++) read_all(fds[i]);
    double t1 = cpu_now();
    printf("files=%zu skipped=%zu bytes=%ld cpu_per_pass=%.9f\n", nfds, skipped, bytes,
           (t1 - t0) / passes);
    return 0;
}
