/* The C floor of the start-up benchmark: the least a correct daemon start does. A readiness
 * pipe, the pidfile opened and flock(2)ed, a double fork with setsid(2), descriptors above
 * the kept ones closed with close_range(2), stdio on /dev/null, the pid written, then "ready"
 * on the pipe: the launcher exits 0 once it reads it. PIDFILE names the pidfile. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    const char *path = getenv("PIDFILE");
    int pipefd[2];
    if (!path || pipe2(pipefd, O_CLOEXEC) != 0) return 1;
    int pidfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (pidfd < 0 || flock(pidfd, LOCK_EX | LOCK_NB) != 0) return 1;
    pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) {
        setsid();
        if (fork() != 0) _exit(0);
        /* The daemon: keep the pidfile and the pipe's write end, close every other one. */
        int low = pidfd < pipefd[1] ? pidfd : pipefd[1];
        int high = pidfd < pipefd[1] ? pipefd[1] : pidfd;
        close_range(3, low - 1, 0);
        close_range(low + 1, high - 1, 0);
        close_range(high + 1, ~0U, 0);
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0); dup2(null, 1); dup2(null, 2);
        if (null > 2) close(null);
        char buf[24];
        int len = snprintf(buf, sizeof buf, "%d\n", getpid());
        if (ftruncate(pidfd, 0) != 0 || pwrite(pidfd, buf, len, 0) != len) _exit(1);
        if (write(pipefd[1], "R", 1) != 1) _exit(1);
        close(pipefd[1]);
        for (;;) pause();
    }
    close(pipefd[1]);
    waitpid(child, NULL, 0);
    char byte;
    return read(pipefd[0], &byte, 1) == 1 ? 0 : 1;
}
