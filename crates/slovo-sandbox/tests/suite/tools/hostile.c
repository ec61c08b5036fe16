/* A hostile tool: each subcommand really attempts one attack and prints what happened as one
 * JSON object. Built with `gcc -static` by the test suite; nothing prebuilt is committed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <poll.h>
#include <unistd.h>

static int res(int r) { return r < 0 ? errno : 0; }
static void out_errno(const char *what, int e) { printf("{\"%s\":%d}\n", what, e); }

static void print_safe(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        putchar((c >= 32 && c < 127 && c != '"' && c != '\\') ? c : '.');
    }
}

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : "info";
    if (!strcmp(cmd, "echo")) {
        char buf[65536];
        ssize_t n;
        while ((n = read(0, buf, sizeof buf)) > 0) fwrite(buf, 1, n, stdout);
        return 0;
    }
    if (!strcmp(cmd, "info")) {
        char host[64] = {0};
        gethostname(host, sizeof host - 1);
        const char *cap = getenv("SLOVO_CAPABILITY");
        char cwd[256] = {0};
        if (!getcwd(cwd, sizeof cwd - 1)) strcpy(cwd, "?");
        int status = -1;
        FILE *f = fopen("/proc/self/status", "r");
        char line[256], capeff[64] = "?", seccomp[16] = "?", nnp[16] = "?", sigign[64] = "?", sigblk[64] = "?";
        while (f && fgets(line, sizeof line, f)) {
            if (!strncmp(line, "CapEff:", 7)) sscanf(line + 7, "%63s", capeff);
            if (!strncmp(line, "Seccomp:", 8)) sscanf(line + 8, "%15s", seccomp);
            if (!strncmp(line, "NoNewPrivs:", 11)) sscanf(line + 11, "%15s", nnp);
            if (!strncmp(line, "SigIgn:", 7)) sscanf(line + 7, "%63s", sigign);
            if (!strncmp(line, "SigBlk:", 7)) sscanf(line + 7, "%63s", sigblk);
        }
        if (f) fclose(f);
        (void)status;
        printf("{\"uid\":%d,\"euid\":%d,\"gid\":%d,\"egid\":%d,\"pid\":%d,\"hostname\":\"%s\",\"capability\":\"%s\","
               "\"cwd\":\"%s\",\"cap_eff\":\"%s\",\"seccomp\":\"%s\",\"no_new_privs\":\"%s\",\"sig_ign\":\"%s\",\"sig_blk\":\"%s\"}\n",
               getuid(), geteuid(), getgid(), getegid(), getpid(), host, cap ? cap : "", cwd, capeff, seccomp, nnp, sigign, sigblk);
        return 0;
    }
    if (!strcmp(cmd, "read") && argc > 2) {
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) { out_errno("errno", errno); return 0; }
        char buf[256];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) { out_errno("errno", errno); return 0; }
        printf("{\"errno\":0,\"data\":\"");
        print_safe(buf, n);
        printf("\"}\n");
        return 0;
    }
    if (!strcmp(cmd, "write") && argc > 2) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) { out_errno("errno", errno); return 0; }
        const char *data = argc > 3 ? argv[3] : "pwned";
        int e = res(write(fd, data, strlen(data)));
        close(fd);
        out_errno("errno", e);
        return 0;
    }
    if (!strcmp(cmd, "symlink") && argc > 3) {
        out_errno("errno", res(symlink(argv[2], argv[3])));
        return 0;
    }
    if (!strcmp(cmd, "ls") && argc > 2) {
        DIR *d = opendir(argv[2]);
        if (!d) { out_errno("errno", errno); return 0; }
        struct dirent *e;
        printf("{\"errno\":0,\"entries\":[");
        int first = 1;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            printf("%s\"", first ? "" : ",");
            print_safe(e->d_name, strlen(e->d_name));
            printf("\"");
            first = 0;
        }
        printf("]}\n");
        return 0;
    }
    if (!strcmp(cmd, "connect") && argc > 3) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
        inet_pton(AF_INET, argv[2], &a.sin_addr);
        out_errno("errno", res(connect(s, (struct sockaddr *)&a, sizeof a)));
        return 0;
    }
    if (!strcmp(cmd, "loopback")) {
        /* Our own loopback works: listen and connect to ourselves. */
        int l = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        socklen_t len = sizeof a;
        if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &len)) {
            out_errno("errno", errno);
            return 0;
        }
        int c = socket(AF_INET, SOCK_STREAM, 0);
        out_errno("errno", res(connect(c, (struct sockaddr *)&a, sizeof a)));
        return 0;
    }
    if (!strcmp(cmd, "netif")) {
        /* The network namespace as the tool sees it: its identity, its interfaces, and
           whether the tool can take its loopback down. */
        char ns[64] = {0};
        if (readlink("/proc/self/ns/net", ns, sizeof ns - 1) < 0) strcpy(ns, "?");
        printf("{\"netns\":\"%s\",\"interfaces\":[", ns);
        struct if_nameindex *ifs = if_nameindex();
        for (struct if_nameindex *i = ifs; i && i->if_index; i++)
            printf("%s\"%s\"", i == ifs ? "" : ",", i->if_name);
        if (ifs) if_freenameindex(ifs);
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct ifreq r;
        memset(&r, 0, sizeof r);
        strcpy(r.ifr_name, "lo");
        int down = res(ioctl(s, SIOCSIFFLAGS, &r));
        printf("],\"lo_down_errno\":%d}\n", down);
        /* Optionally stay alive, so that concurrent calls overlap. */
        if (argc > 2) { fflush(stdout); usleep(atoi(argv[2]) * 1000); }
        return 0;
    }
    if (!strcmp(cmd, "abstract") && argc > 2) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        strncpy(a.sun_path + 1, argv[2], sizeof a.sun_path - 2);
        out_errno("errno", res(connect(s, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 1 + strlen(argv[2]))));
        return 0;
    }
    if (!strcmp(cmd, "raw")) {
        int a = res(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
        int b = res(socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6));
        int c = res(socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)));
        int d = res(socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_ALL)));
        printf("{\"raw4\":%d,\"raw6\":%d,\"packet_raw\":%d,\"packet_dgram\":%d}\n", a, b, c, d);
        return 0;
    }
    if (!strcmp(cmd, "families")) {
        /* Opens a socket of each family (0: it opened, else the errno), then socket pairs,
           and uses netlink's routing protocol the way getifaddrs does. */
        static const struct { const char *name; int domain, type, protocol; } t[] = {
            {"alg", AF_ALG, SOCK_SEQPACKET, 0},
            {"vsock", AF_VSOCK, SOCK_STREAM, 0},
            {"tipc", AF_TIPC, SOCK_RDM, 0},
            {"rds", AF_RDS, SOCK_SEQPACKET, 0},
            {"can", AF_CAN, SOCK_RAW, 1 /* CAN_RAW */},
            {"packet", AF_PACKET, SOCK_DGRAM, 0},
            {"key", AF_KEY, SOCK_RAW, 2 /* PF_KEY_V2 */},
            {"netlink_uevent", AF_NETLINK, SOCK_DGRAM, 15 /* NETLINK_KOBJECT_UEVENT */},
            {"netlink_audit", AF_NETLINK, SOCK_RAW, 9 /* NETLINK_AUDIT */},
            {"unix", AF_UNIX, SOCK_STREAM, 0},
            {"inet", AF_INET, SOCK_STREAM, 0},
            {"inet6", AF_INET6, SOCK_DGRAM, 0},
            {"netlink_route", AF_NETLINK, SOCK_RAW, 0 /* NETLINK_ROUTE */},
        };
        printf("{");
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            int s = socket(t[i].domain, t[i].type | SOCK_CLOEXEC, t[i].protocol);
            int e = s < 0 ? errno : 0;
            if (s >= 0) close(s);
            printf("%s\"%s\":%d", i ? "," : "", t[i].name, e);
        }
        int sv[2];
        int pair_unix = socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 ? errno : 0;
        if (!pair_unix) {
            char c = 0;
            if (write(sv[0], "x", 1) != 1 || read(sv[1], &c, 1) != 1 || c != 'x') pair_unix = -1;
            close(sv[0]);
            close(sv[1]);
        }
        int pair_tipc = socketpair(AF_TIPC, SOCK_RDM, 0, sv) < 0 ? errno : 0;
        int pair_vsock = socketpair(AF_VSOCK, SOCK_STREAM, 0, sv) < 0 ? errno : 0;
        struct if_nameindex *ifs = if_nameindex();
        int interfaces = 0;
        for (struct if_nameindex *i = ifs; i && i->if_index; i++) interfaces++;
        if (ifs) if_freenameindex(ifs);
        printf(",\"pair_unix\":%d,\"pair_tipc\":%d,\"pair_vsock\":%d,\"route_interfaces\":%d}\n",
               pair_unix, pair_tipc, pair_vsock, interfaces);
        return 0;
    }
    if (!strcmp(cmd, "oddities")) {
        /* modify_ldt, unusual personas, and system calls the policy does not name. */
        char ldt[16];
        int ldt_read = res(syscall(SYS_modify_ldt, 0, ldt, sizeof ldt));
        int read_implies_exec = res(syscall(SYS_personality, 0x0400000 /* READ_IMPLIES_EXEC */));
        int per_bsd = res(syscall(SYS_personality, 6 /* PER_BSD */));
        int addr_no_randomize = res(syscall(SYS_personality, 0x0040000 /* ADDR_NO_RANDOMIZE */));
        long query = syscall(SYS_personality, 0xffffffffUL);
        int per_linux = res(syscall(SYS_personality, 0 /* PER_LINUX */));
        int lsm_list_modules = res(syscall(461, 0, 0, 0));
        int nr_1000 = res(syscall(1000, 0, 0, 0));
        int nr_600 = res(syscall(600, 0, 0, 0));
        printf("{\"modify_ldt\":%d,\"read_implies_exec\":%d,\"per_bsd\":%d,\"addr_no_randomize\":%d,"
               "\"query\":%ld,\"per_linux\":%d,\"lsm_list_modules\":%d,\"nr_1000\":%d,\"nr_600\":%d}\n",
               ldt_read, read_implies_exec, per_bsd, addr_no_randomize, query, per_linux, lsm_list_modules,
               nr_1000, nr_600);
        return 0;
    }
    if (!strcmp(cmd, "ptrace") && argc > 2) {
        int attach = res(ptrace(PTRACE_ATTACH, atoi(argv[2]), 0, 0));
        pid_t child = fork();
        if (child == 0) { pause(); _exit(0); }
        int own = res(ptrace(PTRACE_ATTACH, child, 0, 0));
        kill(child, SIGKILL);
        waitpid(child, 0, 0);
        printf("{\"attach_host\":%d,\"attach_own_child\":%d}\n", attach, own);
        return 0;
    }
    if (!strcmp(cmd, "traceme")) {
        /* Asks to be traced by the parent: outside the sandbox when the tool is its pid 1. */
        int me = res(ptrace(PTRACE_TRACEME, 0, 0, 0));
        printf("{\"traceme\":%d}\n", me);
        fflush(stdout);
        return 0;
    }
    if (!strcmp(cmd, "foreign-abi") && argc > 2) {
        /* getpid through the i386 entry (int 0x80) or through the x32 ABI. A filter that only
           knows the native ABI must not let either through. */
        long r = -1;
        int e = 0;
        if (!strcmp(argv[2], "i386")) {
#if defined(__x86_64__)
            __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
#endif
        } else {
            r = syscall(39 | 0x40000000);
            e = r < 0 ? errno : 0;
        }
        printf("{\"result\":%ld,\"errno\":%d}\n", r, e);
        return 0;
    }
    if (!strcmp(cmd, "mount")) {
        int a = res(mount("none", "/tmp", "tmpfs", 0, 0));
        int b = res(mount("/tool", "/tmp", 0, MS_BIND, 0));
        int c = res(mount(0, "/", 0, MS_REMOUNT | MS_BIND, 0));
        int d = res(umount2("/proc", MNT_DETACH));
        int e = res(chroot("/tmp"));
        int f = res(syscall(SYS_pivot_root, "/tmp", "/tmp"));
        int g = res(syscall(SYS_fsopen, "tmpfs", 0));
        int h = res(syscall(SYS_open_tree, AT_FDCWD, "/tool", 1 /* OPEN_TREE_CLONE */));
        printf("{\"tmpfs\":%d,\"bind\":%d,\"remount\":%d,\"umount\":%d,\"chroot\":%d,\"pivot_root\":%d,\"fsopen\":%d,\"open_tree\":%d}\n",
               a, b, c, d, e, f, g, h);
        return 0;
    }
    if (!strcmp(cmd, "unshare")) {
        int user = res(unshare(CLONE_NEWUSER));
        int net = res(unshare(CLONE_NEWNET));
        int mnt = res(unshare(CLONE_NEWNS));
        long c = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (c == 0) _exit(0);
        int clone_user = c < 0 ? errno : 0;
        if (c > 0) waitpid(c, 0, 0);
        int fd = open("/proc/self/ns/user", O_RDONLY);
        int setns_user = fd < 0 ? -errno : res(setns(fd, 0));
        int fd2 = open("/proc/1/ns/net", O_RDONLY);
        int setns_net = fd2 < 0 ? -errno : res(setns(fd2, CLONE_NEWNET));
        printf("{\"unshare_user\":%d,\"unshare_net\":%d,\"unshare_mount\":%d,\"clone_newuser\":%d,\"setns_user\":%d,\"setns_net\":%d}\n",
               user, net, mnt, clone_user, setns_user, setns_net);
        return 0;
    }
    if (!strcmp(cmd, "exec") && argc > 2) {
        execv(argv[2], argv + 2);
        out_errno("errno", errno);
        return 0;
    }
    if (!strcmp(cmd, "kill") && argc > 2) {
        int one = res(kill(atoi(argv[2]), SIGKILL));
        int all = res(kill(-1, SIGKILL));
        printf("{\"kill_pid\":%d,\"kill_all\":%d}\n", one, all);
        return 0;
    }
    if (!strcmp(cmd, "kernel")) {
        int keyctl = res(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 1));
        int add_key = res(syscall(SYS_add_key, "user", "slovo", "x", 1, -3));
        union bpf_attr attr;
        memset(&attr, 0, sizeof attr);
        int bpf = res(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
        int perf = res(syscall(SYS_perf_event_open, 0, 0, -1, -1, 0));
        int uffd = res(syscall(SYS_userfaultfd, 0));
        int uring = res(syscall(SYS_io_uring_setup, 1, 0));
        int mknod_ = res(mknod("/tmp/null", S_IFCHR | 0666, makedev(1, 3)));
        int hostname = res(sethostname("evil", 4));
        int clone3 = res(syscall(SYS_clone3, 0, 0));
        printf("{\"keyctl\":%d,\"add_key\":%d,\"bpf\":%d,\"perf_event_open\":%d,\"userfaultfd\":%d,\"io_uring\":%d,"
               "\"mknod\":%d,\"sethostname\":%d,\"clone3\":%d}\n",
               keyctl, add_key, bpf, perf, uffd, uring, mknod_, hostname, clone3);
        return 0;
    }
    if (!strcmp(cmd, "forkbomb")) {
        int forked = 0, failures = 0, last = 0;
        while (failures < 2000) {
            pid_t p = fork();
            if (p == 0) { pause(); _exit(0); }
            if (p < 0) { failures++; last = errno; } else forked++;
        }
        printf("{\"forked\":%d,\"errno\":%d}\n", forked, last);
        return 0;
    }
    if (!strcmp(cmd, "forkbomb-forever")) {
        for (;;) fork();
    }
    if (!strcmp(cmd, "membomb")) {
        for (;;) {
            char *p = malloc(1 << 20);
            if (!p) { out_errno("errno", ENOMEM); return 0; }
            memset(p, 1, 1 << 20);
        }
    }
    if (!strcmp(cmd, "fill") && argc > 2) {
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) { out_errno("errno", errno); return 0; }
        static char buf[1 << 20];
        memset(buf, 'x', sizeof buf);
        long long written = 0;
        int e = 0;
        for (;;) {
            ssize_t n = write(fd, buf, sizeof buf);
            if (n < 0) { e = errno; break; }
            written += n;
            if (n < (ssize_t)sizeof buf) { /* short write: next one reports the error */ }
        }
        int s = res(fsync(fd));
        printf("{\"written\":%lld,\"errno\":%d,\"fsync\":%d}\n", written, e, s);
        return 0;
    }
    if (!strcmp(cmd, "spin")) {
        fork();
        fork();
        for (;;) {}
    }
    if (!strcmp(cmd, "flood")) {
        static char buf[65536];
        memset(buf, 'A', sizeof buf);
        for (;;) if (write(1, buf, sizeof buf) < 0) return 1;
    }
    if (!strcmp(cmd, "daemon") && argc > 2) {
        pid_t p = fork();
        if (p == 0) {
            setsid();
            if (fork() == 0) {
                close(0); close(1); close(2);
                sleep(atoi(argv[2]));
                int fd = open("/data/daemon-marker", O_WRONLY | O_CREAT, 0644);
                if (fd >= 0) { (void)!write(fd, "alive", 5); close(fd); }
                _exit(0);
            }
            _exit(0);
        }
        waitpid(p, 0, 0);
        printf("{\"daemonised\":true}\n");
        return 0;
    }
    if (!strcmp(cmd, "sleep") && argc > 2) {
        sleep(atoi(argv[2]));
        return 0;
    }
    if (!strcmp(cmd, "exit") && argc > 2) {
        fprintf(stderr, "exiting with %s\n", argv[2]);
        return atoi(argv[2]);
    }
    if (!strcmp(cmd, "stderr-flood")) {
        static char buf[65536];
        memset(buf, 'E', sizeof buf);
        for (int i = 0; i < 64; i++) (void)!write(2, buf, sizeof buf);
        printf("{\"done\":true}\n");
        return 0;
    }
    if (!strcmp(cmd, "udp") && argc > 4) {
        /* Send one datagram (a DNS query, say) straight to IP:PORT, skipping the proxy. */
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
        inet_pton(AF_INET, argv[2], &a.sin_addr);
        out_errno("errno", sendto(s, argv[4], strlen(argv[4]), 0, (struct sockaddr *)&a, sizeof a) < 0 ? errno : 0);
        return 0;
    }
    if (!strcmp(cmd, "proxy") && argc > 2) {
        /* Send argv[2] verbatim to the proxy named by HTTP_PROXY (http://IP:PORT) and print
           everything it answers until it closes the connection. */
        const char *env = getenv("HTTP_PROXY");
        if (!env || strncmp(env, "http://", 7)) { out_errno("errno", ENOENT); return 0; }
        char host[64] = {0};
        strncpy(host, env + 7, sizeof host - 1);
        char *colon = strrchr(host, ':');
        if (!colon) { out_errno("errno", EINVAL); return 0; }
        *colon = 0;
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(colon + 1))};
        inet_pton(AF_INET, host, &a.sin_addr);
        if (connect(s, (struct sockaddr *)&a, sizeof a)) { out_errno("errno", errno); return 0; }
        struct timeval tv = {.tv_sec = 5};
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        (void)!write(s, argv[2], strlen(argv[2]));
        static char buf[65536];
        size_t got = 0;
        ssize_t n;
        while (got < sizeof buf && (n = read(s, buf + got, sizeof buf - got)) > 0) got += n;
        printf("{\"errno\":0,\"response\":\"");
        print_safe(buf, got);
        printf("\"}\n");
        return 0;
    }
    if (!strcmp(cmd, "tcp") && argc > 4) {
        /* Connect to IP:PORT, giving up after argv[4] ms (a dropped SYN would otherwise hang). */
        int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
        inet_pton(AF_INET, argv[2], &a.sin_addr);
        if (connect(s, (struct sockaddr *)&a, sizeof a) == 0) { out_errno("errno", 0); return 0; }
        if (errno != EINPROGRESS) { out_errno("errno", errno); return 0; }
        struct pollfd p = {.fd = s, .events = POLLOUT};
        if (poll(&p, 1, atoi(argv[4])) <= 0) { out_errno("errno", ETIMEDOUT); return 0; }
        int e = 0;
        socklen_t len = sizeof e;
        getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &len);
        out_errno("errno", e);
        return 0;
    }
    if (!strcmp(cmd, "listen") && argc > 3) {
        /* Listen on 0.0.0.0:PORT for argv[3] seconds; report how many connections arrived. */
        int l = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
        if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 8)) { out_errno("errno", errno); return 0; }
        int accepted = 0;
        for (int i = 0; i < atoi(argv[3]) * 10; i++) {
            struct pollfd p = {.fd = l, .events = POLLIN};
            if (poll(&p, 1, 100) > 0) {
                int c = accept(l, NULL, NULL);
                if (c >= 0) { accepted++; close(c); }
            }
        }
        printf("{\"errno\":0,\"accepted\":%d}\n", accepted);
        return 0;
    }
    if (!strcmp(cmd, "dns") && argc > 4) {
        /* Ask the resolver at IP:PORT for the A record of argv[4] (a name carrying data) and
           wait up to 3 s for an answer: {"errno":0,"rcode":R,"answers":N}, or the errno. */
        unsigned char q[512] = {0x51, 0x0f, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
        size_t n = 12;
        const char *name = argv[4];
        while (*name && n < 400) {
            const char *dot = strchr(name, '.');
            size_t len = dot ? (size_t)(dot - name) : strlen(name);
            if (len > 63) len = 63;
            q[n++] = (unsigned char)len;
            memcpy(q + n, name, len);
            n += len;
            name += len;
            if (*name == '.') name++;
        }
        q[n++] = 0;
        q[n++] = 0; q[n++] = 1; /* A */
        q[n++] = 0; q[n++] = 1; /* IN */
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
        inet_pton(AF_INET, argv[2], &a.sin_addr);
        if (connect(s, (struct sockaddr *)&a, sizeof a) || send(s, q, n, 0) < 0) { out_errno("errno", errno); return 0; }
        struct timeval tv = {.tv_sec = 3};
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        unsigned char r[512];
        ssize_t got = recv(s, r, sizeof r, 0);
        if (got < 12) { out_errno("errno", got < 0 ? errno : EPROTO); return 0; }
        printf("{\"errno\":0,\"rcode\":%d,\"answers\":%d}\n", r[3] & 0x0f, (r[6] << 8) | r[7]);
        return 0;
    }
    fprintf(stderr, "unknown command %s\n", cmd);
    return 2;
}
