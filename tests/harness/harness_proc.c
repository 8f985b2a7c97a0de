/*
 * harness_proc.c — child processes for tests: rkbridge started from a properties text or an
 * argv (output to a log file in h_tmpdir()), and commands run to completion with their output
 * captured. Every process started is SIGKILLed and reaped at exit if the test did not stop it.
 *
 * Test programs have librdkafka threads running when they fork, so the child only calls
 * async-signal-safe functions (dup2, execve, write, _exit): the environment for the child is
 * built in the parent instead of calling setenv() after fork().
 */
#include "harness.h"
#include "harness_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Forks and execs path (execvp when search is true) with stdin from /dev/null and stdout and
 * stderr to the given fds. Only async-signal-safe calls happen in the child. */
static pid_t spawn(const char *path, bool search, char *const *argv, char *const *envp, int out_fd,
                   int err_fd) {
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd == -1)
        h_fatal("open /dev/null: %s", strerror(errno));
    pid_t pid = fork();
    if (pid == -1)
        h_fatal("fork: %s", strerror(errno));
    if (pid == 0) {
        if (dup2(null_fd, STDIN_FILENO) == -1 || dup2(out_fd, STDOUT_FILENO) == -1 ||
            dup2(err_fd, STDERR_FILENO) == -1)
            _exit(127);
        if (search)
            execvpe(path, argv, envp);
        else
            execve(path, argv, envp);
        static const char msg[] = "harness: exec failed\n";
        ssize_t ignored = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)ignored;
        _exit(127);
    }
    close(null_fd);
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

h_proc_t *h_rkbridge_spawn(const char *const *argv, const char *const *env) {
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
    char **envp = build_envp(env);
    priv->proc.pid =
        spawn(h_rkbridge_bin(), false, (char *const *)child_argv, envp, log_fd, log_fd);
    close(log_fd);
    free(envp);
    free(child_argv);
    priv->cleanup = h_cleanup_register(proc_cleanup, priv);
    return &priv->proc;
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
    char **envp = build_envp(NULL);
    h_proc_t proc = {.pid = spawn(argv[0], true, (char *const *)argv, envp, out_fd, err_fd)};
    close(out_fd);
    close(err_fd);
    free(envp);

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
