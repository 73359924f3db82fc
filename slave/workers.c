#include "workers.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clk.h"
#include "log.h"

#define RESTART_MIN_S 1
#define RESTART_MAX_S 60
#define STABLE_S      10 /* a worker that lived this long restarts after RESTART_MIN_S again */
#define STOP_WAIT_MS  10000

struct push_worker {
	struct push_workers *w;
	int index; /* 1..n, also its log context "push worker INDEX" */
	pid_t pid; /* 0 while not running */
	time_t started;
	int delay; /* the next restart delay, s */
	struct event *restart_ev;
};

struct push_workers {
	struct daemon *d;
	int n;
	bool stopping;
	struct event *sigchld_ev;
	struct push_worker *workers;
};

/* Fork and exec "PROGNAME -c CFG -W INDEX"; 0, or -1 after logging. */
static int worker_spawn(struct push_worker *pw)
{
	struct daemon *d = pw->w->d;
	char index[8];
	pid_t parent = getpid();
	snprintf(index, sizeof(index), "%d", pw->index);
	char *const argv[] = { (char *)d->progname, "-c", d->cfg_path, "-W", index, NULL };
	pid_t pid = fork();
	if (pid < 0) {
		log_warn("push worker %d: cannot fork", pw->index);
		return -1;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls until exec. */
		sigset_t none;
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
			_exit(1);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* Every descriptor of the main process is close-on-exec already;
		 * closing the rest too means a later one that is not cannot leak. */
		close_range(3, ~0U, 0);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	pw->pid = pid;
	pw->started = (time_t)(clk_mono_ms() / 1000);
	log_notice("push worker %d started (pid %d)", pw->index, (int)pid);
	return 0;
}

static void schedule_restart(struct push_worker *pw)
{
	struct timeval tv = { pw->delay, 0 };
	event_add(pw->restart_ev, &tv);
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
	struct push_worker *pw = arg;
	if (pw->w->stopping || pw->pid != 0)
		return;
	if (worker_spawn(pw) != 0)
		schedule_restart(pw);
}

static void describe_status(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "signal %d", WTERMSIG(status));
	else if (WIFEXITED(status))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
	else
		snprintf(buf, len, "status %#x", status);
}

static struct push_worker *find_pid(struct push_workers *w, pid_t pid)
{
	for (int i = 0; i < w->n; i++)
		if (w->workers[i].pid == pid)
			return &w->workers[i];
	return NULL;
}

static void on_sigchld(evutil_socket_t fd, short what, void *arg)
{
	struct push_workers *w = arg;
	int status;
	pid_t pid;
	char how[64];
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct push_worker *pw = find_pid(w, pid);
		if (!pw)
			continue;
		pw->pid = 0;
		describe_status(status, how, sizeof(how));
		if (w->stopping) {
			log_info("push worker %d (pid %d) ended: %s", pw->index, (int)pid, how);
			continue;
		}
		/* A worker that cannot start (port taken, bad file) must not spin. */
		if ((time_t)(clk_mono_ms() / 1000) - pw->started >= STABLE_S)
			pw->delay = RESTART_MIN_S;
		log_warnx("push worker %d (pid %d) died: %s; restarting in %d s", pw->index,
			  (int)pid, how, pw->delay);
		schedule_restart(pw);
		pw->delay = pw->delay * 2 > RESTART_MAX_S ? RESTART_MAX_S : pw->delay * 2;
	}
}

struct push_workers *workers_start(struct daemon *d, int n, char *err, size_t errlen)
{
	struct push_workers *w = calloc(1, sizeof(*w));
	int running = 0;
	if (!w || !(w->workers = calloc((size_t)n, sizeof(*w->workers)))) {
		free(w);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->d = d;
	w->n = n;
	w->sigchld_ev = evsignal_new(d->base, SIGCHLD, on_sigchld, w);
	if (!w->sigchld_ev || event_add(w->sigchld_ev, NULL) != 0) {
		snprintf(err, errlen, "cannot watch SIGCHLD");
		workers_stop(w);
		return NULL;
	}
	for (int i = 0; i < n; i++) {
		struct push_worker *pw = &w->workers[i];
		pw->w = w;
		pw->index = i + 1;
		pw->delay = RESTART_MIN_S;
		pw->restart_ev = evtimer_new(d->base, on_restart, pw);
		if (!pw->restart_ev) {
			snprintf(err, errlen, "out of memory");
			workers_stop(w);
			return NULL;
		}
		if (worker_spawn(pw) == 0)
			running++;
		else
			schedule_restart(pw);
	}
	if (running == 0) {
		snprintf(err, errlen, "no push worker could be started: %s", strerror(errno));
		workers_stop(w);
		return NULL;
	}
	return w;
}

void workers_signal(struct push_workers *w, int sig)
{
	if (!w)
		return;
	for (int i = 0; i < w->n; i++)
		if (w->workers[i].pid > 0)
			kill(w->workers[i].pid, sig);
}

pid_t workers_pid(const struct push_workers *w, int index)
{
	if (!w || index < 1 || index > w->n)
		return 0;
	return w->workers[index - 1].pid;
}

/* Reaps the workers that ended; the number still running. */
static int reap(struct push_workers *w, int options)
{
	int left = 0, status;
	char how[64];
	for (int i = 0; i < w->n; i++) {
		struct push_worker *pw = &w->workers[i];
		if (pw->pid <= 0)
			continue;
		pid_t r = waitpid(pw->pid, &status, options);
		if (r == pw->pid || (r < 0 && errno == ECHILD)) {
			if (r == pw->pid) {
				describe_status(status, how, sizeof(how));
				log_info("push worker %d (pid %d) stopped: %s", pw->index,
					 (int)pw->pid, how);
			}
			pw->pid = 0;
		} else {
			left++;
		}
	}
	return left;
}

void workers_stop(struct push_workers *w)
{
	if (!w)
		return;
	w->stopping = true;
	workers_signal(w, SIGTERM);
	for (int waited = 0; reap(w, WNOHANG) > 0; waited += 50) {
		if (waited >= STOP_WAIT_MS) {
			log_warnx("push workers still running after %d s: SIGKILL",
				  STOP_WAIT_MS / 1000);
			workers_signal(w, SIGKILL);
			reap(w, 0);
			break;
		}
		usleep(50 * 1000);
	}
	for (int i = 0; i < w->n; i++)
		if (w->workers[i].restart_ev)
			event_free(w->workers[i].restart_ev);
	if (w->sigchld_ev)
		event_free(w->sigchld_ev);
	free(w->workers);
	free(w);
}
