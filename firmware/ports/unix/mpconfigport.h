/*
 * heapscope's host test port: a 32-bit MicroPython for Linux with the heapscope module inside,
 * imports from files, mem_info as the stock unix port prints it.
 */

#define MICROPY_MEM_STATS (1) /* as the stock unix port: mem_info() starts with "mem: total=" */
#define MICROPY_MALLOC_USES_ALLOCATED_SIZE (1)
#define MICROPY_FLOAT_IMPL (MICROPY_FLOAT_IMPL_DOUBLE)
#define MICROPY_READER_POSIX (1)

#define MICROPY_PY_SYS_ARGV (1)
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

#define MICROPY_ALLOC_PATH_MAX (PATH_MAX)
#include <limits.h>

#include "../common/mpconfigcommon.h"
