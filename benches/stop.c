/* The C floor of the stop benchmark: read the pid from PIDFILE, pidfd_open(2) it, SIGTERM,
 * and poll(2) the pidfd until the process has exited. */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    const char *path = getenv("PIDFILE");
    FILE *file = path ? fopen(path, "r") : NULL;
    int pid = 0;
    if (!file || fscanf(file, "%d", &pid) != 1) return 1;
    fclose(file);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0 || syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0) != 0) return 1;
    struct pollfd wait = {.fd = pidfd, .events = POLLIN};
    return poll(&wait, 1, 10000) == 1 ? 0 : 1;
}
