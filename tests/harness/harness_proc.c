/*
 * harness_proc.c — child processes for tests: rkbridge started from a properties text or an
 * argv (output to a log file in h_tmpdir()), and commands run to completion with their output
 * captured. Every process started is SIGKILLed and reaped at exit if the test did not stop it.
 *
 * h_spawn, the one fork/exec of the harness (redis-server and the dev broker are started with
 * it too), lives here. Test programs have librdkafka threads running when they fork, so the
 * child only calls async-signal-safe functions (prctl, dup2, execve, write, _exit): the PATH
 * lookup and the environment for the child are done in the parent instead of calling execvp()
 * or setenv() after fork().
 */
#include "harness.h"
#include "harness_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define H_RUN_TIMEOUT_MS 60000

/* The public struct first, so that an h_proc_t * is also a proc_priv_t *. */
typedef struct proc_priv_s {
    h_proc_t proc;
    int cleanup;
} proc_priv_t;

static int file_counter;

/* environ with the "NAME=value" entries of env added (replacing same-named ones). The array is
 * malloc'd, the strings are borrowed from environ and env. */
static char **build_envp(const char *const *env) {
    size_t environ_cnt = 0, env_cnt = 0;
    while (environ && environ[environ_cnt])
        environ_cnt++;
    while (env && env[env_cnt])
        env_cnt++;
    char **envp = calloc(environ_cnt + env_cnt + 1, sizeof(*envp));
    if (!envp)
        h_fatal("out of memory");
    size_t n = 0;
    for (size_t i = 0; i < environ_cnt; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t name_len = eq ? (size_t)(eq - environ[i]) + 1 : strlen(environ[i]);
        bool overridden = false;
        for (size_t j = 0; j < env_cnt && !overridden; j++)
            overridden = !strncmp(env[j], environ[i], name_len);
        if (!overridden)
            envp[n++] = environ[i];
    }
    for (size_t j = 0; j < env_cnt; j++) {
        if (!strchr(env[j], '='))
            h_fatal("env entry '%s' is not NAME=value", env[j]);
        envp[n++] = (char *)env[j];
    }
    return envp;
}

/* The file execvp() would run for name: name itself if it holds a '/', else the first
 * executable regular file called name in a $PATH dir ("" meaning the current dir; glibc's
 * "/bin:/usr/bin" if PATH is unset). If there is none, name: the child's execve then fails as
 * execvp's would. buf receives the path found. */
static const char *search_path(const char *name, char *buf, size_t buf_size) {
    if (strchr(name, '/'))
        return name;
    const char *dirs = getenv("PATH");
    if (!dirs)
        dirs = "/bin:/usr/bin";
    for (const char *dir = dirs;;) {
        const char *end = strchr(dir, ':');
        int dir_len = end ? (int)(end - dir) : (int)strlen(dir);
        int len = snprintf(buf, buf_size, "%.*s%s%s", dir_len, dir, dir_len ? "/" : "", name);
        struct stat st;
        if (len > 0 && (size_t)len < buf_size && stat(buf, &st) == 0 && S_ISREG(st.st_mode) &&
            access(buf, X_OK) == 0)
            return buf;
        if (!end)
            return name;
        dir = end + 1;
    }
}

/* In the child after a failed execve: completes msg (the text up to "errno ", len bytes, with
 * room for 16 more) with err and ")\n" and writes it to stderr. Arithmetic and write() only:
 * this runs between fork and exec. */
static void write_exec_failure(char *msg, size_t len, int err) {
    char digits[12];
    size_t digit_cnt = 0;
    unsigned value = err > 0 ? (unsigned)err : 0;
    do {
        digits[digit_cnt++] = (char)('0' + value % 10);
        value /= 10;
    } while (value && digit_cnt < sizeof(digits));
    while (digit_cnt > 0)
        msg[len++] = digits[--digit_cnt];
    msg[len++] = ')';
    msg[len++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, msg, len);
    (void)ignored;
}

pid_t h_spawn(const h_spawn_opts_t *opts) {
    char found[PATH_MAX];
    const char *path =
        opts->search_path ? search_path(opts->path, found, sizeof(found)) : opts->path;
    char **envp = build_envp(opts->env);

    char exec_failed[PATH_MAX + 64];
    size_t room = sizeof(exec_failed) - 16; /* for write_exec_failure's digits and ")\n" */
    int len = snprintf(exec_failed, room, "harness: cannot exec %s (errno ", path);
    size_t exec_failed_len = len < 0 ? 0 : (size_t)len >= room ? room - 1 : (size_t)len;

    int null_fd = -1;
    if (opts->stdin_fd < 0 || opts->stdout_fd < 0 || opts->stderr_fd < 0) {
        null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null_fd == -1)
            h_fatal("open /dev/null: %s", strerror(errno));
    }
    int stdin_fd = opts->stdin_fd >= 0 ? opts->stdin_fd : null_fd;
    int stdout_fd = opts->stdout_fd >= 0 ? opts->stdout_fd : null_fd;
    int stderr_fd = opts->stderr_fd >= 0 ? opts->stderr_fd : null_fd;

    pid_t pid = fork();
    if (pid == -1)
        h_fatal("fork: %s", strerror(errno));
    if (pid == 0) {
        if (opts->die_with_parent)
            prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (dup2(stdin_fd, STDIN_FILENO) == -1 || dup2(stdout_fd, STDOUT_FILENO) == -1 ||
            dup2(stderr_fd, STDERR_FILENO) == -1)
            _exit(127);
        execve(path, (char *const *)opts->argv, envp);
        write_exec_failure(exec_failed, exec_failed_len, errno);
        _exit(127);
    }
    if (null_fd != -1)
        close(null_fd);
    free(envp);
    return pid;
}

/* A new file in h_tmpdir() for writing, named prefix-<pid>-<n>suffix; path receives its name. */
static int open_new_file(const char *prefix, const char *suffix, char *path, size_t path_size) {
    snprintf(path, path_size, "%s/%s-%ld-%d%s", h_tmpdir(), prefix, (long)getpid(), ++file_counter,
             suffix);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd == -1)
        h_fatal("cannot create %s: %s", path, strerror(errno));
    return fd;
}

static int exit_code(int wait_status) {
    if (WIFEXITED(wait_status))
        return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status))
        return 128 + WTERMSIG(wait_status);
    return -1;
}

/* Reaps proc if it has exited (without blocking). Returns true once it has. */
static bool proc_reap(h_proc_t *proc) {
    if (proc->exited)
        return true;
    int wait_status;
    pid_t pid = waitpid(proc->pid, &wait_status, WNOHANG);
    if (pid == proc->pid) {
        proc->status = exit_code(wait_status);
        proc->exited = true;
    } else if (pid == -1 && errno == ECHILD) {
        proc->status = -1; /* reaped by someone else: its status is lost */
        proc->exited = true;
    }
    return proc->exited;
}

static void proc_kill(h_proc_t *proc) {
    if (proc_reap(proc))
        return;
    kill(proc->pid, SIGKILL);
    int wait_status;
    while (waitpid(proc->pid, &wait_status, 0) == -1 && errno == EINTR)
        ;
    proc->status = exit_code(wait_status);
    proc->exited = true;
}

/* At exit: a process the test did not free is killed and freed. */
static void proc_cleanup(void *arg) {
    proc_priv_t *priv = arg;
    proc_kill(&priv->proc);
    free(priv);
}

/* Starts the rkbridge under test with argv[1..]; stdout and stderr go to the process's log,
 * or stderr to stderr_fd when it is not -1. */
static h_proc_t *spawn_rkbridge(const char *const *argv, const char *const *env, int stderr_fd) {
    size_t argc = 0;
    while (argv[argc])
        argc++;
    if (argc == 0)
        h_fatal("h_rkbridge_spawn: empty argv");
    const char **child_argv = calloc(argc + 1, sizeof(*child_argv));
    proc_priv_t *priv = calloc(1, sizeof(*priv));
    if (!child_argv || !priv)
        h_fatal("out of memory");
    child_argv[0] = h_rkbridge_bin();
    for (size_t i = 1; i < argc; i++)
        child_argv[i] = argv[i];

    int log_fd =
        open_new_file("rkbridge", ".log", priv->proc.log_path, sizeof(priv->proc.log_path));
    priv->proc.pid = h_spawn(&(h_spawn_opts_t){.path = h_rkbridge_bin(),
                                               .argv = child_argv,
                                               .env = env,
                                               .stdin_fd = -1,
                                               .stdout_fd = log_fd,
                                               .stderr_fd = stderr_fd == -1 ? log_fd : stderr_fd});
    close(log_fd);
    free(child_argv);
    priv->cleanup = h_cleanup_register(proc_cleanup, priv);
    return &priv->proc;
}

h_proc_t *h_rkbridge_spawn(const char *const *argv, const char *const *env) {
    return spawn_rkbridge(argv, env, -1);
}

h_proc_t *h_rkbridge_spawn_tty(const char *const *argv, int *tty_fd) {
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    char slave_path[256];
    if (master == -1 || grantpt(master) || unlockpt(master) ||
        ptsname_r(master, slave_path, sizeof(slave_path)))
        h_fatal("pseudo-terminal: %s", strerror(errno));
    int slave = open(slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (slave == -1)
        h_fatal("open %s: %s", slave_path, strerror(errno));
    h_proc_t *proc = spawn_rkbridge(argv, NULL, slave);
    close(slave);
    *tty_fd = master;
    return proc;
}

h_proc_t *h_rkbridge_run(const char *config_text, const char *const *env) {
    char name[64];
    snprintf(name, sizeof(name), "rkbridge-%ld-%d.properties", (long)getpid(), ++file_counter);
    const char *config_path = h_write_file(name, config_text);
    const char *argv[] = {"rkbridge", "run", config_path, NULL};
    return h_rkbridge_spawn(argv, env);
}

int h_proc_wait(h_proc_t *proc, int timeout_ms) {
    int64_t until = h_now_ms() + timeout_ms;
    while (!proc_reap(proc)) {
        if (h_now_ms() >= until)
            return -1;
        h_sleep_ms(20);
    }
    return proc->status;
}

int h_proc_stop(h_proc_t *proc, int sig, int timeout_ms) {
    if (proc_reap(proc))
        return proc->status;
    kill(proc->pid, sig);
    int status = h_proc_wait(proc, timeout_ms);
    if (status == -1) {
        fprintf(stderr, "harness: pid %ld still running %d ms after signal %d; SIGKILL\n",
                (long)proc->pid, timeout_ms, sig);
        proc_kill(proc);
    }
    return status;
}

bool h_proc_alive(h_proc_t *proc) {
    return !proc_reap(proc);
}

/* The whole file as a malloc'd string ("" if it cannot be read). */
static char *read_whole_file(const char *path) {
    FILE *fp = fopen(path, "r");
    char *text = NULL;
    size_t len = 0;
    if (fp) {
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
            char *grown = realloc(text, len + n + 1);
            if (!grown)
                h_fatal("out of memory");
            text = grown;
            memcpy(text + len, chunk, n);
            len += n;
        }
        fclose(fp);
    }
    if (!text && !(text = malloc(1)))
        h_fatal("out of memory");
    text[len] = '\0';
    return text;
}

char *h_proc_output(const h_proc_t *proc) {
    return read_whole_file(proc->log_path);
}

void h_proc_free(h_proc_t *proc) {
    if (!proc)
        return;
    proc_priv_t *priv = (proc_priv_t *)proc;
    h_cleanup_cancel(priv->cleanup);
    proc_cleanup(priv);
}

int h_run(const char *const *argv, char **out, char **err) {
    char out_path[512], err_path[512];
    int out_fd = open_new_file("run", ".out", out_path, sizeof(out_path));
    int err_fd = open_new_file("run", ".err", err_path, sizeof(err_path));
    h_proc_t proc = {.pid = h_spawn(&(h_spawn_opts_t){.path = argv[0],
                                                      .argv = argv,
                                                      .search_path = true,
                                                      .stdin_fd = -1,
                                                      .stdout_fd = out_fd,
                                                      .stderr_fd = err_fd})};
    close(out_fd);
    close(err_fd);

    int status = h_proc_wait(&proc, H_RUN_TIMEOUT_MS);
    if (status == -1 && !proc.exited) {
        proc_kill(&proc);
        h_fatal("%s did not finish within %d ms", argv[0], H_RUN_TIMEOUT_MS);
    }
    if (out)
        *out = read_whole_file(out_path);
    if (err)
        *err = read_whole_file(err_path);
    unlink(out_path);
    unlink(err_path);
    return status;
}
