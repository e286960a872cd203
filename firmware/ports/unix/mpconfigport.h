/*
 * heapscope's host test port: a 32-bit MicroPython for Linux with the heapscope module inside.
 * What the tests need of a board (REPL with raw REPL and raw paste, imports from files,
 * mem_info, gc, scheduler, stack check, builtins override) and nothing else.
 */
#include <stdint.h>
#include <alloca.h>

#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_CORE_FEATURES)

#define MICROPY_ENABLE_GC (1)
#define MICROPY_ENABLE_FINALISER (1)
#define MICROPY_ENABLE_COMPILER (1)
#define MICROPY_HELPER_REPL (1)
#define MICROPY_REPL_AUTO_INDENT (1)
#define MICROPY_REPL_EMACS_KEYS (1)
#define MICROPY_ENABLE_SCHEDULER (1)
#define MICROPY_SCHEDULER_DEPTH (8)
#define MICROPY_KBD_EXCEPTION (1)
#define MICROPY_STACK_CHECK (1)
#define MICROPY_MEM_STATS (1) /* as the stock unix port: mem_info() starts with "mem: total=" */
#define MICROPY_MALLOC_USES_ALLOCATED_SIZE (1)
#define MICROPY_ERROR_REPORTING (MICROPY_ERROR_REPORTING_DETAILED)
#define MICROPY_ENABLE_SOURCE_LINE (1)
#define MICROPY_FLOAT_IMPL (MICROPY_FLOAT_IMPL_DOUBLE)
#define MICROPY_LONGINT_IMPL (MICROPY_LONGINT_IMPL_MPZ)
#define MICROPY_CAN_OVERRIDE_BUILTINS (1)
#define MICROPY_MODULE_BUILTIN_INIT (1)
#define MICROPY_READER_POSIX (1)
#define MICROPY_USE_READLINE_HISTORY (1)
#define MICROPY_READLINE_HISTORY_SIZE (8)

#define MICROPY_PY_BUILTINS_BYTEARRAY (1)
#define MICROPY_PY_BUILTINS_SET (1)
#define MICROPY_PY_BUILTINS_FROZENSET (1)
#define MICROPY_PY_BUILTINS_SLICE (1)
#define MICROPY_PY_BUILTINS_PROPERTY (1)
#define MICROPY_PY_BUILTINS_STR_UNICODE (1)
#define MICROPY_PY_BUILTINS_HELP (0)
#define MICROPY_PY_ARRAY (1)
#define MICROPY_PY_COLLECTIONS (1)
#define MICROPY_PY_GC (1)
#define MICROPY_PY_IO (0)
#define MICROPY_PY_MICROPYTHON_MEM_INFO (1)
#define MICROPY_PY_MICROPYTHON_HEAP_LOCKED (1)
#define MICROPY_PY_STRUCT (1)
#define MICROPY_PY_SYS (1)
#define MICROPY_PY_SYS_MODULES (1)
#define MICROPY_PY_SYS_EXIT (1)
#define MICROPY_PY_SYS_PATH (1)
#define MICROPY_PY_SYS_ARGV (1)
#define MICROPY_PY_SYS_STDFILES (1)
#define MICROPY_PY_SYS_STDIO_BUFFER (1)
#define MICROPY_PY_SYS_PLATFORM "linux"

/* Threads as in the stock unix port (POSIX threads, a GC mutex, no GIL), so heapscope's POSIX
 * timer thread path runs here; Python's _thread.start_new_thread is not offered. */
#ifndef MICROPY_PY_THREAD
#define MICROPY_PY_THREAD (1)
#endif
#if MICROPY_PY_THREAD
#define MICROPY_PY_THREAD_GIL (0)
#define MICROPY_MPTHREADPORT_H "mpthreadport.h"
void mp_thread_port_begin_atomic(void);
void mp_thread_port_end_atomic(void);
#define MICROPY_BEGIN_ATOMIC_SECTION() (mp_thread_port_begin_atomic(), 0)
#define MICROPY_END_ATOMIC_SECTION(state) ((void)(state), mp_thread_port_end_atomic())
#endif

#define MICROPY_HW_BOARD_NAME "heapscope host test port"
#define MICROPY_HW_MCU_NAME "i686"

#define MP_STATE_PORT MP_STATE_VM
#define MICROPY_ALLOC_PATH_MAX (PATH_MAX)
#include <limits.h>

typedef int32_t mp_int_t;
typedef uint32_t mp_uint_t;
typedef long mp_off_t;

