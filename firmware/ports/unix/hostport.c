/*
 * heapscope's host test port: main loop, HAL and the little POSIX glue MicroPython needs.
 *
 *   micropython [-X heapsize=N[K|M]] [-i] [-c CODE | FILE]
 *
 * Without CODE or FILE (or with -i after them) it runs the REPL of the boards: friendly REPL,
 * raw REPL and raw paste (shared/runtime/pyexec.c). On a terminal it puts the terminal in raw
 * mode for its whole life, output translation included, so binary frames pass unchanged;
 * Ctrl-C stays a signal there and becomes KeyboardInterrupt or the REPL's Ctrl-C.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "py/builtin.h"
#include "py/compile.h"
#include "py/gc.h"
#include "py/mperrno.h"
#include "py/mphal.h"
#include "py/runtime.h"
#include "py/stackctrl.h"
#include "shared/readline/readline.h"
#include "shared/runtime/gchelper.h"
#include "shared/runtime/pyexec.h"

/* ---- Terminal and Ctrl-C ---- */

static struct termios orig_termios;
static bool stdin_is_tty;
static volatile int interrupt_char = -1;
static volatile sig_atomic_t ctrl_c_for_readline;

static void restore_terminal(void) {
    if (stdin_is_tty) {
        tcsetattr(STDIN_FILENO, TCSANOW, &orig_termios);
    }
}

static void raw_terminal(void) {
    stdin_is_tty = tcgetattr(STDIN_FILENO, &orig_termios) == 0;
    if (!stdin_is_tty) {
        return;
    }
    struct termios t = orig_termios;
    t.c_iflag &= ~(BRKINT | ICRNL | INPCK | ISTRIP | IXON | INLCR | IGNCR);
    t.c_oflag &= ~OPOST;
    t.c_cflag |= CS8;
    t.c_lflag &= ~(ECHO | ICANON | IEXTEN);
    t.c_lflag |= ISIG; /* Ctrl-C only: */
    t.c_cc[VINTR] = 3;
    t.c_cc[VQUIT] = _POSIX_VDISABLE;
    t.c_cc[VSUSP] = _POSIX_VDISABLE;
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &t);
    atexit(restore_terminal);
}

static void on_sigint(int sig) {
    (void)sig;
    if (interrupt_char == 3) {
        mp_sched_keyboard_interrupt();
    } else {
        ctrl_c_for_readline = 1;
    }
}

void mp_hal_set_interrupt_char(char c) {
    interrupt_char = c;
}

/* ---- Console ---- */

int mp_hal_stdin_rx_chr(void) {
    for (;;) {
        if (ctrl_c_for_readline) {
            ctrl_c_for_readline = 0;
            return 3;
        }
        unsigned char c;
        ssize_t n = read(STDIN_FILENO, &c, 1);
        if (n == 1) {
            if (!stdin_is_tty && c == 3 && interrupt_char == 3) {
                mp_sched_keyboard_interrupt();
                continue;
            }
            return c;
        }
        if (n == 0) {
            return 4; /* end of input: Ctrl-D, as a board's user would type */
        }
        if (errno != EINTR) {
            return 4;
        }
        mp_handle_pending(MP_HANDLE_PENDING_CALLBACKS_AND_EXCEPTIONS);
    }
}

mp_uint_t mp_hal_stdout_tx_strn(const char *str, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(STDOUT_FILENO, str + done, len - done);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno != EINTR && errno != EAGAIN) {
            break;
        }
    }
    return done;
}

/* The unix port prints "\n" as it is (boards send "\r\n"). */
void mp_hal_stdout_tx_strn_cooked(const char *str, size_t len) {
    mp_hal_stdout_tx_strn(str, len);
}

void mp_hal_stdout_tx_str(const char *str) {
    mp_hal_stdout_tx_strn(str, strlen(str));
}

uintptr_t mp_hal_stdio_poll(uintptr_t poll_flags) {
    (void)poll_flags;
    return 0;
}

/* ---- Time ---- */

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

mp_uint_t mp_hal_ticks_ms(void) {
    return (mp_uint_t)(now_us() / 1000u);
}

mp_uint_t mp_hal_ticks_us(void) {
    return (mp_uint_t)now_us();
}

mp_uint_t mp_hal_ticks_cpu(void) {
    return (mp_uint_t)now_us();
}

uint64_t mp_hal_time_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleeps in slices of at most 1 ms, running scheduled callbacks between them. */
void mp_hal_delay_us(mp_uint_t us) {
    uint64_t end = now_us() + us;
    for (;;) {
        mp_event_handle_nowait();
        uint64_t now = now_us();
        if (now >= end) {
            return;
        }
        uint64_t left = end - now;
        struct timespec ts = {0, (long)(left < 1000 ? left : 1000) * 1000L};
        nanosleep(&ts, NULL);
    }
}

void mp_hal_delay_ms(mp_uint_t ms) {
    mp_hal_delay_us(ms * 1000);
}

#if MICROPY_PY_THREAD
/* ---- Threads: the VM runs on one thread; other POSIX threads (heapscope's timer) only
 * schedule callbacks, inside the atomic section. ---- */

static pthread_mutex_t atomic_mutex;

void mp_thread_init(void) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&atomic_mutex, &attr);
    pthread_mutexattr_destroy(&attr);
}

void mp_thread_port_begin_atomic(void) {
    pthread_mutex_lock(&atomic_mutex);
}

void mp_thread_port_end_atomic(void) {
    pthread_mutex_unlock(&atomic_mutex);
}

struct _mp_state_thread_t *mp_thread_get_state(void) {
    return &mp_state_ctx.thread;
}

void mp_thread_set_state(struct _mp_state_thread_t *state) {
    (void)state;
}

mp_uint_t mp_thread_create(void *(*entry)(void *), void *arg, size_t *stack_size) {
    (void)entry;
    (void)arg;
    (void)stack_size;
    mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("no Python threads on this port"));
}

mp_uint_t mp_thread_get_id(void) {
    return (mp_uint_t)pthread_self();
}

void mp_thread_start(void) {
}

void mp_thread_finish(void) {
}

void mp_thread_mutex_init(mp_thread_mutex_t *mutex) {
    pthread_mutex_init(mutex, NULL);
}

int mp_thread_mutex_lock(mp_thread_mutex_t *mutex, int wait) {
    return (wait ? pthread_mutex_lock(mutex) : pthread_mutex_trylock(mutex)) == 0;
}

void mp_thread_mutex_unlock(mp_thread_mutex_t *mutex) {
    pthread_mutex_unlock(mutex);
}

void mp_thread_recursive_mutex_init(mp_thread_recursive_mutex_t *mutex) {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(mutex, &attr);
    pthread_mutexattr_destroy(&attr);
}

int mp_thread_recursive_mutex_lock(mp_thread_recursive_mutex_t *mutex, int wait) {
    return mp_thread_mutex_lock(mutex, wait);
}

void mp_thread_recursive_mutex_unlock(mp_thread_recursive_mutex_t *mutex) {
    pthread_mutex_unlock(mutex);
}

#endif

/* ---- Files, GC, errors ---- */

mp_import_stat_t mp_import_stat(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0) {
        return S_ISDIR(st.st_mode) ? MP_IMPORT_STAT_DIR : MP_IMPORT_STAT_FILE;
    }
    return MP_IMPORT_STAT_NO_EXIST;
}

mp_obj_t mp_builtin_open(size_t n_args, const mp_obj_t *args, mp_map_t *kwargs) {
    (void)n_args;
    (void)args;
    (void)kwargs;
    mp_raise_OSError(MP_EOPNOTSUPP);
}
MP_DEFINE_CONST_FUN_OBJ_KW(mp_builtin_open_obj, 1, mp_builtin_open);

void gc_collect(void) {
    gc_collect_start();
    gc_helper_collect_regs_and_stack();
    gc_collect_end();
}

void nlr_jump_fail(void *val) {
    fprintf(stderr, "FATAL: uncaught NLR %p\n", val);
    exit(1);
}

/* ---- Main ---- */

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s [-X heapsize=N[K|M]] [-i] [-c CODE | FILE [ARGS...]]\n", argv0);
    exit(2);
}

static long parse_heapsize(const char *arg, const char *argv0) {
    char *end;
    long n = strtol(arg, &end, 0);
    if (*end == 'K' || *end == 'k') {
        n *= 1024;
        end++;
    } else if (*end == 'M' || *end == 'm') {
        n *= 1024 * 1024;
        end++;
    }
    if (*end != '\0' || n < 1024) {
        fprintf(stderr, "%s: bad heapsize: %s\n", argv0, arg);
        exit(2);
    }
    return n;
}

/* pyexec's result as a process exit code. */
static int exit_code(int ret) {
    if (ret & PYEXEC_FORCED_EXIT) {
        return ret & 0xff;
    }
    return ret == 1 ? 0 : 1;
}

static int repl(void) {
    for (;;) {
        int ret = pyexec_mode_kind == PYEXEC_MODE_RAW_REPL ? pyexec_raw_repl() : pyexec_friendly_repl();
        if (ret & PYEXEC_FORCED_EXIT) {
            return ret; /* Ctrl-D at the prompt: on a host there is nothing to soft-reset to */
        }
    }
}

static MP_NOINLINE int main_(int argc, char **argv) {
    long heap_size = 1024 * 1024;
    const char *code = NULL;
    const char *file = NULL;
    bool inspect = false;
    int a = 1;
    for (; a < argc; a++) {
        if (strcmp(argv[a], "-X") == 0 && a + 1 < argc) {
            a++;
            if (strncmp(argv[a], "heapsize=", 9) != 0) {
                usage(argv[0]);
            }
            heap_size = parse_heapsize(argv[a] + 9, argv[0]);
        } else if (strcmp(argv[a], "-i") == 0) {
            inspect = true;
        } else if (strcmp(argv[a], "-c") == 0 && a + 1 < argc) {
            code = argv[++a];
            a++;
            break;
        } else if (argv[a][0] == '-') {
            usage(argv[0]);
        } else {
            file = argv[a++];
            break;
        }
    }

    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_sigint);
    raw_terminal();

    char *heap = malloc(heap_size);
    if (heap == NULL) {
        fprintf(stderr, "%s: cannot allocate a heap of %ld bytes\n", argv[0], heap_size);
        return 1;
    }
    gc_init(heap, heap + heap_size);
    mp_init();
    readline_init0();

    if (file != NULL) {
        /* sys.path[0] is the script's folder, as CPython and the stock unix port do. */
        const char *slash = strrchr(file, '/');
        mp_obj_t dir = slash == NULL ? MP_OBJ_NEW_QSTR(MP_QSTR_) : mp_obj_new_str(file, slash - file);
        mp_obj_list_store(mp_sys_path, MP_OBJ_NEW_SMALL_INT(0), dir);
        mp_obj_list_append(mp_sys_argv, mp_obj_new_str(file, strlen(file)));
    }
    for (; a < argc; a++) {
        mp_obj_list_append(mp_sys_argv, mp_obj_new_str(argv[a], strlen(argv[a])));
    }

    int ret = 1;
    if (code != NULL) {
        vstr_t vstr;
        vstr_init_fixed_buf(&vstr, strlen(code), (char *)code);
        vstr.len = strlen(code);
        ret = pyexec_vstr(&vstr, true);
    } else if (file != NULL) {
        ret = pyexec_file(file);
    }
    if ((code == NULL && file == NULL) || (inspect && !(ret & PYEXEC_FORCED_EXIT))) {
        ret = repl();
    }
    mp_deinit();
    free(heap);
    return exit_code(ret);
}

int main(int argc, char **argv) {
    #if MICROPY_PY_THREAD
    mp_thread_init();
    #endif
    /* The stack limit of the stock unix port: 40,000 bytes. */
    mp_cstack_init_with_sp_here(40000);
    return main_(argc, argv);
}
