/* The compiled floor of one scrape (issue 12): the CPU it takes merely to read the /proc and
 * /sys files one agent scrape reads, through descriptors kept open, with pread() from offset 0,
 * by the same rules as src/collector/fsio.rs, so that the floor needs no more reads than the
 * agent does:
 *   - a sysfs attribute (on sysfs, sized a page by sysfs): one read, when it leaves room in the
 *     buffer (its one show() comes whole in the first read; fsio's ReadKind::OneShow);
 *   - /proc/net/udp and udp6 (lines of at most 512 bytes): until a read leaves 512 bytes of
 *     room in a page (seq_read_iter stops short only at the end or when a record does not
 *     fit its page; fsio's Records::AtMost, as the udp_queues collector reads them);
 *   - any other file: until a read returns 0.
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
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static char buf[1 << 20];

enum kind { UNTIL_END, ONE_SHOW, UDP_RECORDS };

#define SYSFS_MAGIC 0x62656572
#define PROC_SUPER_MAGIC 0x9fa0
#define UDP_MAX_RECORD 512

static long page;

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* How fsio reads the file open on fd (path: as listed). */
static enum kind kind_of(int fd, const char *path) {
    struct statfs sf;
    struct stat st;
    if (fstatfs(fd, &sf) != 0 || fstat(fd, &st) != 0) return UNTIL_END;
    if (sf.f_type == SYSFS_MAGIC && st.st_size == page) return ONE_SHOW;
    if (sf.f_type == PROC_SUPER_MAGIC && (ends_with(path, "/net/udp") || ends_with(path, "/net/udp6")))
        return UDP_RECORDS;
    return UNTIL_END;
}

static long read_all(int fd, enum kind k) {
    long total = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, total);
        if (n < 0) {
            if (errno == EINTR) continue;
            return total;
        }
        if (n == 0) return total;
        total += n;
        if (k == ONE_SHOW && total == n && (size_t)n < sizeof buf) return total;
        if (k == UDP_RECORDS && n + UDP_MAX_RECORD <= page) return total;
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
    page = sysconf(_SC_PAGESIZE);
    int *fds = NULL;
    enum kind *kinds = NULL;
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
            kinds = realloc(kinds, cap * sizeof *kinds);
            if (!fds || !kinds) return 2;
        }
        kinds[nfds] = kind_of(fd, line);
        fds[nfds++] = fd;
    }
    fclose(list);
    long bytes = 0;
    for (size_t i = 0; i < nfds; i++) bytes += read_all(fds[i], kinds[i]); /* warm-up pass */
    double t0 = cpu_now();
    for (long p = 0; p < passes; p++)
        for (size_t i = 0; i < nfds; i++) read_all(fds[i], kinds[i]);
    double t1 = cpu_now();
    printf("files=%zu skipped=%zu bytes=%ld cpu_per_pass=%.9f\n", nfds, skipped, bytes,
           (t1 - t0) / passes);
    return 0;
}
