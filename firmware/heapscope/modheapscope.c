/*
 * heapscope: stream GC heap snapshots and events to the heapscope host tool.
 *
 *   import heapscope
 *   heapscope.snapshot()              # one snapshot now
 *   heapscope.start(period_ms=1000)   # periodic snapshots, paced to the line's budget
 *   heapscope.stop()
 *   heapscope.mark("after wifi")      # a labelled point on the host's timeline
 *   heapscope.trace_imports(True, collect=True)   # cost of every import
 *   heapscope.dump()                  # every used block's words, names and roots (SPEC 3.7)
 *
 * Frames (protocol/SPEC.md) go to stdout raw, between the console text. Taking a snapshot
 * allocates nothing on the GC heap: all state is static, encoding streams through a 255-byte
 * buffer (hs_core.c).
 *
 * Pacing: everything the module writes is charged to a token bucket that fills at the line
 * budget (max_bytes_per_s). A periodic snapshot goes only as a frame that fits what the bucket
 * holds (a delta when the keyframe does not fit), otherwise it is skipped and counted; the
 * count goes to the host in a "skipped" event.
 */
#include <string.h>

#include "py/builtin.h"
#include "py/gc.h"
#include "py/mphal.h"
#include "py/mperrno.h"
#include "py/mpstate.h"
#include "py/runtime.h"
#include "py/stackctrl.h"
#include "genhdr/mpversion.h"
/* For the compiler's name in MICROPY_BANNER_MACHINE; MicroPython builds without extmod/ (the
 * PyPI sdist of its core) lack it. */
#if defined(__has_include)
#if __has_include("extmod/modplatform.h")
#include "extmod/modplatform.h"
#endif
#endif
#ifndef MICROPY_PLATFORM_COMPILER
#define MICROPY_PLATFORM_COMPILER ""
#endif

#include "hs_core.h"

#if defined(ESP_PLATFORM)
#include "esp_heap_caps.h"
#if MICROPY_HW_ENABLE_UART_REPL
#include "driver/uart.h" /* the REPL UART's baud rate, for the line budget */
#endif
#elif (defined(PICO_RP2040) || defined(PICO_RP2350)) && MICROPY_HW_ENABLE_UART_REPL
#include "hardware/clocks.h"
#include "hardware/uart.h"
#endif

/* What drives start(): a port's own timer hook (MICROPY_HEAPSCOPE_PORT_TIMER, see below), or
 * the timer this module knows for the port; without one, the program calls poll(). */
#if defined(MICROPY_HEAPSCOPE_PORT_TIMER) && MICROPY_HEAPSCOPE_PORT_TIMER
#define HEAPSCOPE_TIMER_PORT 1
#elif defined(ESP_PLATFORM)
#include "esp_timer.h"
#define HEAPSCOPE_TIMER_ESP 1
#elif defined(PICO_RP2040) || defined(PICO_RP2350)
#include "pico/time.h"
#define HEAPSCOPE_TIMER_PICO 1
#elif (defined(__unix__) || defined(__APPLE__)) && MICROPY_PY_THREAD
#include <pthread.h>
#include <time.h>
#define HEAPSCOPE_TIMER_PTHREAD 1
#endif
#if defined(HEAPSCOPE_TIMER_PORT) || defined(HEAPSCOPE_TIMER_ESP) || defined(HEAPSCOPE_TIMER_PICO) || defined(HEAPSCOPE_TIMER_PTHREAD)
#define HEAPSCOPE_HAS_TIMER 1
#endif

#define HS_BLOCK_BYTES (MICROPY_BYTES_PER_GC_BLOCK)
/* Areas walked; the tracker follows up to HS_MAX_AREAS of them, more go as keyframes. */
#define HS_WALK_AREAS (HS_MAX_AREAS * 2)

#if MICROPY_GC_SPLIT_HEAP
#define HS_NEXT_AREA(a) ((a)->next)
#else
#define HS_NEXT_AREA(a) (NULL)
#endif

/* The bound method and closure types are not in py/obj.h but are plain globals. */
extern const mp_obj_type_t mp_type_closure;
extern const mp_obj_module_t heapscope_user_cmodule;

static hs_writer_t hs_writer;
static hs_tracker_t hs_tracker;
static hs_area_t hs_areas[HS_WALK_AREAS];
static size_t hs_area_count;
/* The areas of the previous snapshot, to report areas added and removed. */
static uint64_t hs_prev_start[HS_WALK_AREAS];
static size_t hs_prev_blocks[HS_WALK_AREAS];
static size_t hs_prev_count;
static bool hs_started; /* hello sent */
static bool hs_streaming;
static uint32_t hs_period_ms;
static uint32_t hs_import_depth;
static bool hs_import_collect;
/* Set by the timer when it schedules a snapshot, cleared when it runs: one at a time. */
static volatile bool hs_tick_pending;
/* Whether this module's entry in sys.modules marks the VM its state belongs to (hs_check_vm). */
static bool hs_vm_marked;
static void hs_check_vm(void);

/* ---- Output ---- */

/* ESP32's mp_hal_stdout_tx_strn releases the GIL for writes longer than
 * MICROPY_PY_STRING_TX_GIL_THRESHOLD (20) bytes, which would let other threads change the heap
 * in the middle of a snapshot: write in pieces that keep it. */
#if defined(MICROPY_PY_STRING_TX_GIL_THRESHOLD)
#define HS_WRITE_PIECE (MICROPY_PY_STRING_TX_GIL_THRESHOLD)
#else
#define HS_WRITE_PIECE 255
#endif

/* ---- Line budget ----
 * A token bucket in milli-bytes: it fills at hs_budget_bps up to one second's worth and every
 * byte written takes 1000 from it. It may go below zero (an explicit snapshot, an event, a frame
 * larger than the bucket): periodic snapshots then wait until the debt is paid. */

/* Bytes per second the line carries, where the port can tell. A build may set it with
 * MICROPY_HEAPSCOPE_LINE_BYTES_PER_S. */
#define HS_USB_BYTES_PER_S (200000) /* USB CDC and USB-Serial-JTAG: far faster than any UART */
#define HS_UART_BYTES_PER_S(baud) ((baud) / 10) /* 8N1: ten bits on the wire per byte */
#ifndef MICROPY_HEAPSCOPE_LINE_BYTES_PER_S
#define MICROPY_HEAPSCOPE_LINE_BYTES_PER_S HS_UART_BYTES_PER_S(115200) /* the usual REPL UART */
#endif
/* The stream's default share of the line. Where console writes wait for the line (ESP32's REPL
 * UART spins on its FIFO) that share is also the share of the program's time the stream may
 * take: 5 % keeps the slowdown under 5 % and leaves the line to the program's own output. */
#define HS_DEFAULT_SHARE_PERCENT (5)
#define HS_MIN_BYTES_PER_S (100)

static uint32_t hs_line_bytes_per_s(void) {
    #if defined(ESP_PLATFORM) && MICROPY_HW_ENABLE_UART_REPL
    /* The REPL UART (which also carries output when native USB is on): its current rate. */
    uint32_t baud = 0;
    if (uart_get_baudrate(MICROPY_HW_UART_REPL, &baud) == ESP_OK && baud > 0) {
        return HS_UART_BYTES_PER_S(baud);
    }
    return HS_UART_BYTES_PER_S(MICROPY_HW_UART_REPL_BAUD);
    #elif (defined(PICO_RP2040) || defined(PICO_RP2350)) && MICROPY_HW_ENABLE_UART_REPL
    /* pico-sdk has no getter: the PL011's divisor is clk_peri / (16 * baud) in 1/64ths. */
    uart_hw_t *hw = uart_get_hw(uart_get_instance(MICROPY_HW_UART_REPL));
    uint32_t divisor = (hw->ibrd << 6) + hw->fbrd;
    if (divisor > 0) {
        return HS_UART_BYTES_PER_S((uint32_t)((4ull * clock_get_hz(clk_peri)) / divisor));
    }
    return HS_UART_BYTES_PER_S(MICROPY_HW_UART_REPL_BAUD);
    #elif defined(ESP_PLATFORM) || defined(PICO_RP2040) || defined(PICO_RP2350)
    return HS_USB_BYTES_PER_S;
    #else
    return MICROPY_HEAPSCOPE_LINE_BYTES_PER_S;
    #endif
}

static uint32_t hs_budget_bps;
static int64_t hs_tokens_mb; /* milli-bytes */
static uint32_t hs_tokens_ms; /* when the bucket was last filled */
static uint32_t hs_skipped; /* periodic snapshots skipped since the last one sent */

static int64_t hs_bucket_capacity_mb(void) {
    return (int64_t)hs_budget_bps * 1000;
}

/* A new budget, the bucket empty: what start() sends itself (hello, keyframe) is paid for before
 * the first periodic snapshot, so the stream keeps to the budget from its first byte. */
static void hs_bucket_reset(uint32_t bytes_per_s) {
    hs_budget_bps = bytes_per_s;
    hs_tokens_mb = 0;
    hs_tokens_ms = mp_hal_ticks_ms();
}

static void hs_bucket_fill(void) {
    uint32_t now = mp_hal_ticks_ms();
    uint32_t elapsed = now - hs_tokens_ms;
    hs_tokens_ms = now;
    int64_t cap = hs_bucket_capacity_mb();
    /* A debt (a frame larger than the bucket) is paid off at the budget's rate however long it
     * takes; only then does the bucket fill. An hour bounds the product: no overflow. */
    int64_t gained = (int64_t)(elapsed < 3600000u ? elapsed : 3600000u) * hs_budget_bps;
    hs_tokens_mb = hs_tokens_mb + gained >= cap ? cap : hs_tokens_mb + gained;
}

/* Bytes a paced frame may take now. A full bucket lets any one frame through (a keyframe
 * larger than a second of line must go some time); the debt it leaves holds back the next. */
static size_t hs_bucket_room(void) {
    if (hs_tokens_mb >= hs_bucket_capacity_mb()) {
        return (size_t)-1;
    }
    return hs_tokens_mb > 0 ? (size_t)(hs_tokens_mb / 1000) : 0;
}

static void hs_stdout_sink(void *ctx, const uint8_t *data, size_t len) {
    (void)ctx;
    hs_tokens_mb -= (int64_t)len * 1000;
    while (len > 0) {
        size_t n = len < HS_WRITE_PIECE ? len : HS_WRITE_PIECE;
        mp_hal_stdout_tx_strn((const char *)data, n);
        data += n;
        len -= n;
    }
}

/* While a frame is written nothing else may run that changes the heap or writes a frame:
 * - other threads: with a GIL, holding it is enough; without (unix), take the GC's mutex;
 * - scheduled callbacks (our own periodic tick among them): a USB-CDC write that waits for the
 *   host runs the event hook, which would run them, so the scheduler is locked. */
#if MICROPY_PY_THREAD && !MICROPY_PY_THREAD_GIL
#define HS_HEAP_LOCK() mp_thread_recursive_mutex_lock(&MP_STATE_MEM(gc_mutex), 1)
#define HS_HEAP_UNLOCK() mp_thread_recursive_mutex_unlock(&MP_STATE_MEM(gc_mutex))
#else
#define HS_HEAP_LOCK()
#define HS_HEAP_UNLOCK()
#endif
#if MICROPY_ENABLE_SCHEDULER
#define HS_ENTER() do { mp_sched_lock(); HS_HEAP_LOCK(); } while (0)
#define HS_EXIT() do { HS_HEAP_UNLOCK(); mp_sched_unlock(); } while (0)
#else
#define HS_ENTER() HS_HEAP_LOCK()
#define HS_EXIT() HS_HEAP_UNLOCK()
#endif

/* ---- Heap walk ---- */

static void hs_collect_areas(void) {
    size_t n = 0;
    for (mp_state_mem_area_t *a = &MP_STATE_MEM(area); a != NULL && n < HS_WALK_AREAS; a = HS_NEXT_AREA(a)) {
        hs_areas[n].pool_start = (uint64_t)(uintptr_t)a->gc_pool_start;
        hs_areas[n].atb = a->gc_alloc_table_start;
        hs_areas[n].blocks = a->gc_alloc_table_byte_len * 4;
        n++;
    }
    hs_area_count = n;
}

/* A block's kind in the allocation table: 0 free, 1 head, 2 tail, 3 mark. */
static unsigned hs_kind(const hs_area_t *a, size_t block) {
    return (a->atb[block / 4] >> (2 * (block & 3))) & 3;
}

/* Whether `p` is the first byte of a head block in one of the walked areas. */
static bool hs_is_heap_head(const void *p) {
    uintptr_t addr = (uintptr_t)p;
    for (size_t i = 0; i < hs_area_count; i++) {
        const hs_area_t *a = &hs_areas[i];
        uintptr_t start = (uintptr_t)a->pool_start;
        if (addr >= start && addr < start + a->blocks * HS_BLOCK_BYTES && (addr - start) % HS_BLOCK_BYTES == 0) {
            size_t block = (addr - start) / HS_BLOCK_BYTES;
            return hs_kind(a, block) == 1;
        }
    }
    return false;
}

/* The object type of an allocation, from its first word: objects start with their type. Only
 * pointer comparisons, and reads inside the heap, so raw data is never dereferenced. */
static uint8_t hs_classify(void *ctx, size_t area, size_t block) {
    (void)ctx;
    const hs_area_t *a = &hs_areas[area];
    const void *type = *(const void *const *)(uintptr_t)(a->pool_start + (uint64_t)block * HS_BLOCK_BYTES);
    if (type == &mp_type_tuple) {
        return HS_TYPE_TUPLE;
    } else if (type == &mp_type_list) {
        return HS_TYPE_LIST;
    } else if (type == &mp_type_dict) {
        return HS_TYPE_DICT;
    } else if (type == &mp_type_str || type == &mp_type_bytes) {
        return HS_TYPE_STR;
    #if MICROPY_PY_BUILTINS_BYTEARRAY
    } else if (type == &mp_type_bytearray) {
        return HS_TYPE_BYTEARRAY;
    #endif
    #if MICROPY_PY_ARRAY
    } else if (type == &mp_type_array) {
        return HS_TYPE_BYTEARRAY;
    #endif
    #if MICROPY_PY_BUILTINS_FLOAT
    } else if (type == &mp_type_float) {
        return HS_TYPE_FLOAT;
    #endif
    } else if (type == &mp_type_fun_bc) {
        return HS_TYPE_FUNCTION;
    } else if (type == &mp_type_module) {
        return HS_TYPE_MODULE;
    #if MICROPY_PY_BUILTINS_SET
    } else if (type == &mp_type_set) {
        return HS_TYPE_SET;
    #endif
    #if MICROPY_PY_BUILTINS_FROZENSET
    } else if (type == &mp_type_frozenset) {
        return HS_TYPE_SET;
    #endif
    #if MICROPY_LONGINT_IMPL != MICROPY_LONGINT_IMPL_NONE
    } else if (type == &mp_type_int) {
        return HS_TYPE_INT;
    #endif
    } else if (type == &mp_type_closure) {
        return HS_TYPE_CLOSURE;
    } else if (type == &mp_type_bound_meth) {
        return HS_TYPE_BOUND_METHOD;
    } else if (type == &mp_type_type) {
        return HS_TYPE_TYPE; /* a class defined at run time */
    } else if (hs_is_heap_head(type) && *(const void *const *)type == &mp_type_type) {
        return HS_TYPE_INSTANCE; /* its type is a class on the heap */
    }
    return HS_TYPE_OTHER;
}

/* `stack_used`: mp_stack_usage() where the program called in (a Python function or the
 * scheduler), as mem_info() would print it there, not the module's own deeper frames. */
static void hs_fill_figures(hs_figures_t *f, size_t stack_used) {
    memset(f, 0, sizeof(*f));
    gc_info_t info;
    gc_info(&info);
    f->has_gc = 1;
    f->gc_total = info.total;
    f->gc_used = info.used;
    f->gc_free = info.free;
    f->gc_one_blocks = info.num_1block;
    f->gc_two_blocks = info.num_2block;
    f->gc_max_block = info.max_block;
    f->gc_max_free = info.max_free;
    /* What gc.mem_alloc() and gc.mem_free() would return now (py/modgc.c). */
    f->has_python = 1;
    f->python_mem_alloc = info.used;
    f->python_mem_free = info.free;
    #if MICROPY_GC_SPLIT_HEAP_AUTO
    f->has_max_new_split = 1;
    f->max_new_split = info.max_new_split;
    f->python_mem_free += info.max_new_split;
    #endif
    f->has_stack = 1;
    f->stack_used = stack_used;
    #if MICROPY_STACK_CHECK
    f->has_stack_limit = 1;
    f->stack_limit = MP_STATE_THREAD(stack_limit);
    #endif
    #if MICROPY_MEM_STATS
    f->has_mem = 1;
    f->mem_total = m_get_total_bytes_allocated();
    f->mem_current = m_get_current_bytes_allocated();
    f->mem_peak = m_get_peak_bytes_allocated();
    #endif
    #if defined(ESP_PLATFORM)
    /* The GC heap grows out of the IDF heap: both belong in one view. */
    static hs_system_heap_t heaps[2];
    static const uint32_t caps[2] = {MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT, MALLOC_CAP_SPIRAM};
    size_t n = 0;
    for (size_t i = 0; i < 2; i++) {
        multi_heap_info_t hi;
        heap_caps_get_info(&hi, caps[i]);
        size_t total = heap_caps_get_total_size(caps[i]);
        if (total == 0) {
            continue;
        }
        heaps[n].caps = caps[i];
        heaps[n].total = total;
        heaps[n].free = hi.total_free_bytes;
        heaps[n].largest_free = hi.largest_free_block;
        heaps[n].min_free = hi.minimum_free_bytes;
        n++;
    }
    f->system_heap_count = n;
    f->system_heaps = heaps;
    #endif
}

/* ---- Frames ---- */

static void hs_send_hello_now(void) {
    static const char interpreter[] = MICROPY_BANNER_NAME_AND_VERSION "; " MICROPY_BANNER_MACHINE;
    static const char platform[] = MICROPY_PY_SYS_PLATFORM;
    hs_collect_areas();
    hs_send_hello(&hs_writer, mp_hal_ticks_ms(), HS_BLOCK_BYTES, interpreter, sizeof(interpreter) - 1,
        platform, sizeof(platform) - 1, hs_areas, hs_area_count);
    hs_tracker_reset(&hs_tracker);
    hs_prev_count = hs_area_count;
    for (size_t i = 0; i < hs_area_count; i++) {
        hs_prev_start[i] = hs_areas[i].pool_start;
        hs_prev_blocks[i] = hs_areas[i].blocks;
    }
}

/* Starts a new segment on the host: a hello, then a keyframe at the next snapshot. The sequence
 * number runs on across hellos (SPEC 2): a host sees from it whether frames were lost. */
static void hs_begin_session(void) {
    if (hs_writer.sink == NULL) {
        hs_writer_init(&hs_writer, hs_stdout_sink, NULL);
    }
    if (hs_budget_bps == 0) {
        hs_bucket_reset(hs_line_bytes_per_s() * HS_DEFAULT_SHARE_PERCENT / 100);
    }
    hs_started = true;
    hs_send_hello_now();
}

static void hs_ensure_started(void) {
    if (!hs_started) {
        hs_begin_session();
    }
}

/* Area events for areas that came or went since the last snapshot (split heaps). */
static void hs_report_area_changes(uint32_t ms) {
    for (size_t i = 0; i < hs_prev_count; i++) {
        bool kept = false;
        for (size_t j = 0; j < hs_area_count && !kept; j++) {
            kept = hs_areas[j].pool_start == hs_prev_start[i] && hs_areas[j].blocks == hs_prev_blocks[i];
        }
        if (!kept) {
            hs_send_area_removed(&hs_writer, ms, hs_prev_start[i]);
        }
    }
    for (size_t j = 0; j < hs_area_count; j++) {
        bool known = false;
        for (size_t i = 0; i < hs_prev_count && !known; i++) {
            known = hs_areas[j].pool_start == hs_prev_start[i] && hs_areas[j].blocks == hs_prev_blocks[i];
        }
        if (!known) {
            hs_send_area_added(&hs_writer, ms, hs_areas[j].pool_start, hs_areas[j].blocks);
        }
    }
    hs_prev_count = hs_area_count;
    for (size_t i = 0; i < hs_area_count; i++) {
        hs_prev_start[i] = hs_areas[i].pool_start;
        hs_prev_blocks[i] = hs_areas[i].blocks;
    }
}

static void hs_send_skipped_count(uint32_t ms) {
    if (hs_skipped > 0) {
        hs_send_skipped(&hs_writer, ms, hs_skipped);
        hs_skipped = 0;
    }
}

/* Bytes the "skipped" event for hs_skipped will take, measured by encoding it into a counter. */
static void hs_count_sink(void *ctx, const uint8_t *data, size_t len) {
    (void)data;
    *(size_t *)ctx += len;
}
static size_t hs_skipped_event_bytes(void) {
    size_t n = 0;
    if (hs_skipped > 0) {
        hs_writer_t dry;
        hs_writer_init(&dry, hs_count_sink, &n);
        hs_send_skipped(&dry, 0xFFFFFFFFu, hs_skipped);
    }
    return n;
}

/* One snapshot. `paced` (the periodic stream): only if it fits the line budget, else skipped and
 * counted. Not paced (the program asked: snapshot(), import tracing): always sent, as a delta
 * when the budget is short and the delta fits, and charged to the bucket all the same. */
static void hs_take_snapshot(size_t stack_used, bool paced) {
    HS_ENTER();
    hs_ensure_started();
    hs_bucket_fill();
    if (paced && hs_tokens_mb < 0) {
        /* In debt: not even the heap walk. */
        hs_skipped++;
        HS_EXIT();
        return;
    }
    uint32_t ms = mp_hal_ticks_ms();
    hs_collect_areas();
    hs_report_area_changes(ms);
    hs_figures_t figures;
    hs_fill_figures(&figures, stack_used);
    size_t room = hs_bucket_room();
    size_t reserve = hs_skipped_event_bytes();
    size_t budget = room == (size_t)-1 ? room : room > reserve ? room - reserve : 0;
    int sent = hs_send_snapshot_within(&hs_writer, &hs_tracker, ms, HS_BLOCK_BYTES, hs_areas, hs_area_count,
        hs_classify, NULL, &figures, budget);
    if (sent == HS_FRAME_NONE && !paced) {
        sent = hs_send_snapshot(&hs_writer, &hs_tracker, ms, HS_BLOCK_BYTES, hs_areas, hs_area_count,
            hs_classify, NULL, &figures);
    }
    if (sent == HS_FRAME_NONE) {
        hs_skipped++;
    } else {
        hs_send_skipped_count(ms);
    }
    HS_EXIT();
}

/* ---- Python API ---- */

static mp_obj_t heapscope_snapshot(void) {
    hs_check_vm();
    hs_take_snapshot(mp_stack_usage(), false);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(heapscope_snapshot_obj, heapscope_snapshot);

static mp_obj_t heapscope_hello(void) {
    hs_check_vm();
    HS_ENTER();
    hs_begin_session();
    HS_EXIT();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(heapscope_hello_obj, heapscope_hello);

static mp_obj_t heapscope_mark(mp_obj_t label_in) {
    size_t len;
    const char *label = mp_obj_str_get_data(label_in, &len);
    hs_check_vm();
    HS_ENTER();
    hs_ensure_started();
    hs_send_mark(&hs_writer, mp_hal_ticks_ms(), label, len); /* the core cuts it whole characters */
    HS_EXIT();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(heapscope_mark_obj, heapscope_mark);

#if defined(HEAPSCOPE_HAS_TIMER)
/* Periodic snapshots: a timer schedules a callback that runs between bytecodes, in the VM's
 * own thread, so snapshots never race the program. */
static mp_obj_t heapscope_tick(mp_obj_t arg) {
    (void)arg;
    hs_tick_pending = false;
    hs_check_vm();
    if (hs_streaming) {
        hs_take_snapshot(mp_stack_usage(), true);
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(heapscope_tick_obj, heapscope_tick);

/* Called from the timer (interrupt, timer task or thread): queue one snapshot. The scheduler
 * queue is a fixed array, so this allocates nothing. */
static void hs_schedule_tick(void) {
    /* A soft reset empties the queue (mp_init): a tick queued before it never runs. */
    if (hs_tick_pending && MP_STATE_VM(sched_len) == 0) {
        hs_tick_pending = false;
    }
    if (!hs_tick_pending) {
        hs_tick_pending = mp_sched_schedule(MP_OBJ_FROM_PTR(&heapscope_tick_obj), mp_const_none);
    }
}

#endif

static uint32_t hs_last_poll_ms;

#if HEAPSCOPE_TIMER_PORT
/* The port's timer: it calls `tick` every period_ms (from an interrupt is fine) until stopped.
 * A port sets MICROPY_HEAPSCOPE_PORT_TIMER to 1 and defines these two. */
bool mp_heapscope_port_timer_start(uint32_t period_ms, void (*tick)(void));
void mp_heapscope_port_timer_stop(void);
static bool hs_timer_start(uint32_t period_ms) {
    return mp_heapscope_port_timer_start(period_ms, hs_schedule_tick);
}
static void hs_timer_stop(void) {
    mp_heapscope_port_timer_stop();
}
#elif HEAPSCOPE_TIMER_ESP
static esp_timer_handle_t hs_timer;
static void hs_timer_cb(void *arg) {
    (void)arg;
    hs_schedule_tick();
}
static bool hs_timer_start(uint32_t period_ms) {
    if (hs_timer == NULL) {
        const esp_timer_create_args_t args = {.callback = hs_timer_cb, .name = "heapscope"};
        if (esp_timer_create(&args, &hs_timer) != ESP_OK) {
            return false;
        }
    }
    esp_timer_stop(hs_timer);
    return esp_timer_start_periodic(hs_timer, (uint64_t)period_ms * 1000) == ESP_OK;
}
static void hs_timer_stop(void) {
    if (hs_timer != NULL) {
        esp_timer_stop(hs_timer);
    }
}
#elif HEAPSCOPE_TIMER_PICO
static repeating_timer_t hs_timer;
static bool hs_timer_running;
static bool hs_timer_cb(repeating_timer_t *t) {
    (void)t;
    hs_schedule_tick();
    return true;
}
static bool hs_timer_start(uint32_t period_ms) {
    if (hs_timer_running) {
        cancel_repeating_timer(&hs_timer);
    }
    hs_timer_running = add_repeating_timer_ms(-(int32_t)period_ms, hs_timer_cb, NULL, &hs_timer);
    return hs_timer_running;
}
static void hs_timer_stop(void) {
    if (hs_timer_running) {
        cancel_repeating_timer(&hs_timer);
        hs_timer_running = false;
    }
}
#elif HEAPSCOPE_TIMER_PTHREAD
/* The unix port has no hardware timer: a plain POSIX thread (not a Python thread) wakes up each
 * period and schedules the callback, which the VM runs between bytecodes or while sleeping. */
static pthread_t hs_thread;
static pthread_mutex_t hs_thread_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hs_thread_wake = PTHREAD_COND_INITIALIZER;
static bool hs_thread_run; /* guarded by hs_thread_mutex */
static bool hs_thread_alive;
static void *hs_thread_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&hs_thread_mutex);
    while (hs_thread_run) {
        /* Wait a period, or until stop() wakes us: stop() must not wait out the sleep. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)hs_period_ms * 1000000u;
        until.tv_sec += (time_t)(ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        int r = 0;
        while (hs_thread_run && r == 0) {
            r = pthread_cond_timedwait(&hs_thread_wake, &hs_thread_mutex, &until);
        }
        if (hs_thread_run) {
            hs_schedule_tick();
        }
    }
    pthread_mutex_unlock(&hs_thread_mutex);
    return NULL;
}
static bool hs_timer_start(uint32_t period_ms) {
    (void)period_ms;
    if (hs_thread_alive) {
        return true; /* it reads hs_period_ms each round */
    }
    hs_thread_run = true;
    hs_thread_alive = pthread_create(&hs_thread, NULL, hs_thread_main, NULL) == 0;
    return hs_thread_alive;
}
static void hs_timer_stop(void) {
    if (hs_thread_alive) {
        pthread_mutex_lock(&hs_thread_mutex);
        hs_thread_run = false;
        pthread_cond_signal(&hs_thread_wake);
        pthread_mutex_unlock(&hs_thread_mutex);
        pthread_join(hs_thread, NULL);
        hs_thread_alive = false;
    }
}
#else
/* No timer on this port: the program calls heapscope.poll() in its loop. */
static bool hs_timer_start(uint32_t period_ms) {
    (void)period_ms;
    return true;
}
static void hs_timer_stop(void) {
}
#endif

/* A soft reset re-initialises the VM (mp_init: new sys.modules, builtins overrides gone, the
 * scheduler's queue emptied) but not this file's static state, and MicroPython has no hook
 * for user modules there. So the module marks its VM with its own entry in sys.modules and
 * checks for it at every entry point: when it is gone, the VM is a new one, and what the old
 * one started (streaming, import tracing) ends. The host gets a hello: a new segment. */
static bool hs_vm_is_new(void) {
    mp_map_t *modules = &MP_STATE_VM(mp_loaded_modules_dict).map;
    return hs_vm_marked && mp_map_lookup(modules, MP_OBJ_NEW_QSTR(MP_QSTR_heapscope), MP_MAP_LOOKUP) == NULL;
}

static void hs_mark_vm(void) {
    if (hs_vm_marked || gc_is_locked()) {
        return; /* marking may allocate; under heap_lock() it waits for the next call */
    }
    mp_map_t *modules = &MP_STATE_VM(mp_loaded_modules_dict).map;
    mp_map_lookup(modules, MP_OBJ_NEW_QSTR(MP_QSTR_heapscope), MP_MAP_LOOKUP_ADD_IF_NOT_FOUND)->value =
        MP_OBJ_FROM_PTR(&heapscope_user_cmodule);
    hs_vm_marked = true;
}

static void hs_check_vm(void) {
    if (hs_vm_is_new()) {
        bool was_streaming = hs_streaming;
        hs_vm_marked = false;
        hs_timer_stop();
        hs_streaming = false;
        hs_tick_pending = false;
        hs_import_depth = 0;
        MP_STATE_VM(heapscope_original_import) = MP_OBJ_NULL; /* builtins.__import__ is the original again */
        HS_ENTER();
        hs_begin_session();
        if (was_streaming) {
            hs_send_stream_stop(&hs_writer, mp_hal_ticks_ms());
        }
        HS_EXIT();
    }
    hs_mark_vm();
}

static mp_obj_t heapscope_start(size_t n_args, const mp_obj_t *pos_args, mp_map_t *kw_args) {
    size_t stack_used = mp_stack_usage();
    enum { ARG_period_ms, ARG_max_bytes_per_s };
    static const mp_arg_t allowed_args[] = {
        { MP_QSTR_period_ms, MP_ARG_INT, {.u_int = 1000} },
        { MP_QSTR_max_bytes_per_s, MP_ARG_KW_ONLY | MP_ARG_OBJ, {.u_rom_obj = MP_ROM_NONE} },
    };
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all(n_args, pos_args, kw_args, MP_ARRAY_SIZE(allowed_args), allowed_args, args);
    hs_check_vm();
    mp_int_t period = args[ARG_period_ms].u_int;
    if (period < 10) {
        mp_raise_ValueError(MP_ERROR_TEXT("period_ms must be at least 10"));
    }
    /* Default: a share of what the console line carries (hs_line_bytes_per_s). */
    uint32_t budget = hs_line_bytes_per_s() * HS_DEFAULT_SHARE_PERCENT / 100;
    if (args[ARG_max_bytes_per_s].u_obj != mp_const_none) {
        mp_int_t b = mp_obj_get_int(args[ARG_max_bytes_per_s].u_obj);
        if (b < HS_MIN_BYTES_PER_S || (mp_uint_t)b > 0x7FFFFFFFu) {
            mp_raise_ValueError(MP_ERROR_TEXT("max_bytes_per_s must be at least 100"));
        }
        budget = (uint32_t)b;
    }
    hs_timer_stop();
    hs_period_ms = (uint32_t)period;
    /* A tick left pending by a soft reset (which empties the queue) would block all others. */
    hs_tick_pending = false;
    HS_ENTER();
    hs_bucket_reset(budget);
    hs_skipped = 0;
    hs_begin_session();
    hs_send_stream_start(&hs_writer, mp_hal_ticks_ms(), hs_period_ms);
    HS_EXIT();
    hs_streaming = true;
    hs_last_poll_ms = mp_hal_ticks_ms();
    if (!hs_timer_start(hs_period_ms)) {
        hs_streaming = false;
        mp_raise_OSError(MP_EIO);
    }
    hs_take_snapshot(stack_used, false);
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_KW(heapscope_start_obj, 0, heapscope_start);

static mp_obj_t heapscope_stop(void) {
    hs_check_vm();
    hs_timer_stop();
    if (hs_streaming) {
        hs_streaming = false;
        HS_ENTER();
        uint32_t ms = mp_hal_ticks_ms();
        hs_send_skipped_count(ms);
        hs_send_stream_stop(&hs_writer, ms);
        HS_EXIT();
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(heapscope_stop_obj, heapscope_stop);

/* For programs on ports without a timer, or that want snapshots at their own points: takes a
 * snapshot if streaming and a period has passed. Returns whether it did. */
static mp_obj_t heapscope_poll(void) {
    hs_check_vm();
    uint32_t now = mp_hal_ticks_ms();
    if (hs_streaming && now - hs_last_poll_ms >= hs_period_ms) {
        hs_last_poll_ms = now;
        hs_take_snapshot(mp_stack_usage(), true);
        return mp_const_true;
    }
    return mp_const_false;
}
static MP_DEFINE_CONST_FUN_OBJ_0(heapscope_poll_obj, heapscope_poll);

/* ---- Heap dump ---- */

/* Blocks per dump frame: 1 KB of 16-byte blocks, a few hundred bytes on the line. Small frames
 * keep each write short and let the host show progress; the whole dump is one burst. */
#define HS_DUMP_FRAME_BLOCKS (64)

/* Built-in types the host classifies by address (objects start with their type). */
typedef struct {
    const char *name;
    const mp_obj_type_t *type;
} hs_named_type_t;

static const hs_named_type_t hs_dump_types[] = {
    {"type", &mp_type_type},
    {"object", &mp_type_object},
    {"list", &mp_type_list},
    {"dict", &mp_type_dict},
    {"str", &mp_type_str},
    {"bytes", &mp_type_bytes},
    {"tuple", &mp_type_tuple},
    {"int", &mp_type_int},
    {"module", &mp_type_module},
    {"function", &mp_type_fun_bc},
    {"closure", &mp_type_closure},
    {"bound_method", &mp_type_bound_meth},
    {"generator", &mp_type_gen_instance},
    {"staticmethod", &mp_type_staticmethod},
    {"classmethod", &mp_type_classmethod},
    #if MICROPY_PY_BUILTINS_BYTEARRAY
    {"bytearray", &mp_type_bytearray},
    #endif
    #if MICROPY_PY_ARRAY
    {"array", &mp_type_array},
    #endif
    #if MICROPY_PY_BUILTINS_SET
    {"set", &mp_type_set},
    #endif
    #if MICROPY_PY_BUILTINS_FROZENSET
    {"frozenset", &mp_type_frozenset},
    #endif
    #if MICROPY_PY_BUILTINS_FLOAT
    {"float", &mp_type_float},
    #endif
    #if MICROPY_PY_BUILTINS_RANGE
    {"range", &mp_type_range},
    #endif
    #if MICROPY_PY_BUILTINS_SLICE
    {"slice", &mp_type_slice},
    #endif
    #if MICROPY_PY_BUILTINS_MEMORYVIEW
    {"memoryview", &mp_type_memoryview},
    #endif
    #if MICROPY_PY_BUILTINS_PROPERTY
    {"property", &mp_type_property},
    #endif
};

static uint32_t hs_dump_ms;

static void hs_dump_root(uint64_t word, const char *name) {
    if (hs_is_heap_head((const void *)(uintptr_t)word)) {
        hs_send_dump_name(&hs_writer, hs_dump_ms, HS_NAME_ROOT, word, "", 0, name, strlen(name));
    }
}

/* Text of a dict key: a qstr or a str object; NULL for other keys. */
static const char *hs_key_text(mp_obj_t key, size_t *len) {
    if (mp_obj_is_qstr(key)) {
        return (const char *)qstr_data(MP_OBJ_QSTR_VALUE(key), len);
    }
    if (mp_obj_is_str(key)) {
        return mp_obj_str_get_data(key, len);
    }
    return NULL;
}

/* Globals of a module that live on the heap: `module.key`, or bare `key` for __main__. */
static void hs_dump_globals(const char *module, size_t module_len, mp_map_t *globals) {
    for (size_t j = 0; j < globals->alloc; j++) {
        if (!mp_map_slot_is_filled(globals, j)) {
            continue;
        }
        size_t key_len;
        const char *key = hs_key_text(globals->table[j].key, &key_len);
        mp_obj_t value = globals->table[j].value;
        if (key != NULL && mp_obj_is_obj(value) && hs_is_heap_head(MP_OBJ_TO_PTR(value))) {
            hs_send_dump_name(&hs_writer, hs_dump_ms, HS_NAME_GLOBAL, (uintptr_t)MP_OBJ_TO_PTR(value),
                module, module_len, key, key_len);
        }
    }
}

/* __main__ (a built-in module whose globals are the VM's dict_main) and the modules of
 * sys.modules, with their globals. */
static void hs_dump_module_names(void) {
    hs_dump_globals("", 0, &MP_STATE_VM(dict_main).map);
    mp_map_t *modules = &MP_STATE_VM(mp_loaded_modules_dict).map;
    for (size_t i = 0; i < modules->alloc; i++) {
        if (!mp_map_slot_is_filled(modules, i)) {
            continue;
        }
        size_t name_len;
        const char *name = hs_key_text(modules->table[i].key, &name_len);
        mp_obj_t module = modules->table[i].value;
        if (name == NULL || !mp_obj_is_type(module, &mp_type_module)) {
            continue;
        }
        hs_send_dump_name(&hs_writer, hs_dump_ms, HS_NAME_MODULE, (uintptr_t)MP_OBJ_TO_PTR(module), "", 0, name, name_len);
        hs_dump_globals(name, name_len, &((mp_obj_module_t *)MP_OBJ_TO_PTR(module))->globals->map);
    }
}

/* The roots as gc_collect() sees them: the VM state's root pointers and the stack. */
static void hs_dump_roots(void) {
    void **ptrs = (void **)(void *)&mp_state_ctx;
    size_t from = offsetof(mp_state_ctx_t, thread.dict_locals) / sizeof(void *);
    size_t to = offsetof(mp_state_ctx_t, vm.qstr_last_chunk) / sizeof(void *);
    size_t modules = offsetof(mp_state_ctx_t, vm.mp_loaded_modules_dict.map.table) / sizeof(void *);
    size_t main_table = offsetof(mp_state_ctx_t, vm.dict_main.map.table) / sizeof(void *);
    for (size_t i = from; i < to; i++) {
        hs_dump_root((uintptr_t)ptrs[i], i == modules ? "sys.modules" : i == main_table ? "__main__" : "VM state");
    }
    #if MICROPY_ENABLE_PYSTACK
    for (void **p = (void **)MP_STATE_THREAD(pystack_start); p < (void **)MP_STATE_THREAD(pystack_cur); p++) {
        hs_dump_root((uintptr_t)*p, "Python stack");
    }
    #endif
    /* The C stack from here up, which holds the VM's frames (the Python stack without PYSTACK). */
    volatile uintptr_t here = 0;
    for (uintptr_t *p = (uintptr_t *)((uintptr_t)&here & ~(uintptr_t)(sizeof(uintptr_t) - 1));
         (char *)p < MP_STATE_THREAD(stack_top); p++) {
        hs_dump_root(*p, "stack");
    }
}

/* heapscope.dump(): every used block's words, the layout of that moment, names and roots, as one
 * burst of dump frames. Nothing runs meanwhile that could change the heap (HS_ENTER) and the
 * module allocates nothing. */
static mp_obj_t heapscope_dump(void) {
    size_t stack_used = mp_stack_usage();
    HS_ENTER();
    hs_ensure_started();
    uint16_t first_seq = hs_writer.seq;
    hs_dump_ms = mp_hal_ticks_ms();
    hs_collect_areas();
    hs_report_area_changes(hs_dump_ms);
    hs_figures_t figures;
    hs_fill_figures(&figures, stack_used);
    hs_send_dump_begin(&hs_writer, hs_dump_ms, sizeof(mp_uint_t), HS_BLOCK_BYTES, figures.python_mem_free);
    /* The layout as a keyframe; the tracker is reset so the next snapshot is a keyframe too. */
    hs_send_keyframe(&hs_writer, hs_dump_ms, HS_BLOCK_BYTES, hs_areas, hs_area_count, hs_classify, NULL, &figures);
    hs_tracker_reset(&hs_tracker);
    uint64_t sent_blocks = 0;
    for (size_t a = 0; a < hs_area_count; a++) {
        const hs_area_t *area = &hs_areas[a];
        size_t b = 0;
        while (b < area->blocks) {
            if (hs_kind(area, b) == 0) {
                b++;
                continue;
            }
            size_t n = 1;
            while (b + n < area->blocks && n < HS_DUMP_FRAME_BLOCKS && hs_kind(area, b + n) != 0) {
                n++;
            }
            hs_send_dump_blocks(&hs_writer, hs_dump_ms, sizeof(mp_uint_t), HS_BLOCK_BYTES, area->pool_start, area->blocks,
                b, n, (const uint8_t *)(uintptr_t)(area->pool_start + (uint64_t)b * HS_BLOCK_BYTES));
            sent_blocks += n;
            b += n;
        }
    }
    for (size_t i = 0; i < MP_ARRAY_SIZE(hs_dump_types); i++) {
        const char *name = hs_dump_types[i].name;
        hs_send_dump_name(&hs_writer, hs_dump_ms, HS_NAME_TYPE, (uintptr_t)hs_dump_types[i].type, "", 0, name, strlen(name));
    }
    hs_dump_module_names();
    /* Classes defined at run time, by their own name (instances are named after them). */
    for (size_t a = 0; a < hs_area_count; a++) {
        const hs_area_t *area = &hs_areas[a];
        for (size_t b = 0; b < area->blocks; b++) {
            if (hs_kind(area, b) != 1) {
                continue;
            }
            const mp_obj_type_t *t = (const mp_obj_type_t *)(uintptr_t)(area->pool_start + (uint64_t)b * HS_BLOCK_BYTES);
            if (t->base.type == &mp_type_type) {
                size_t len;
                const char *name = (const char *)qstr_data(t->name, &len);
                hs_send_dump_name(&hs_writer, hs_dump_ms, HS_NAME_CLASS, (uintptr_t)t, "", 0, name, len);
            }
        }
    }
    hs_dump_roots();
    /* Frames of this dump, the end included. */
    hs_send_dump_end(&hs_writer, hs_dump_ms, (uint16_t)(hs_writer.seq - first_seq + 1), sent_blocks);
    HS_EXIT();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(heapscope_dump_obj, heapscope_dump);

/* ---- Import tracing ---- */

static void hs_import_done(uint32_t depth, const char *name, size_t len, bool ok, uint32_t t0, size_t stack_used) {
    uint32_t elapsed = mp_hal_ticks_us() - t0;
    if (hs_import_collect) {
        gc_collect();
    }
    HS_ENTER();
    hs_send_import_end(&hs_writer, mp_hal_ticks_ms(), depth, name, len, ok, elapsed);
    HS_EXIT();
    hs_take_snapshot(stack_used, false);
}

/* Stands in for builtins.__import__: begin event and snapshot, the real import, end event and
 * snapshot. The heap cost of the import is the difference of the two snapshots. */
static mp_obj_t heapscope_import(size_t n_args, const mp_obj_t *args) {
    size_t stack_used = mp_stack_usage();
    size_t len;
    const char *name = mp_obj_str_get_data(args[0], &len); /* the core cuts it whole characters */
    uint32_t depth = hs_import_depth++;
    if (hs_import_collect) {
        gc_collect();
    }
    HS_ENTER();
    hs_ensure_started();
    hs_send_import_begin(&hs_writer, mp_hal_ticks_ms(), depth, name, len);
    HS_EXIT();
    hs_take_snapshot(stack_used, false);
    uint32_t t0 = mp_hal_ticks_us();
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t module = mp_call_function_n_kw(MP_STATE_VM(heapscope_original_import), n_args, 0, args);
        nlr_pop();
        hs_import_depth--;
        hs_import_done(depth, name, len, true, t0, stack_used);
        return module;
    }
    hs_import_depth--;
    hs_import_done(depth, name, len, false, t0, stack_used);
    nlr_jump(nlr.ret_val);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(heapscope_import_obj, 1, 5, heapscope_import);

static mp_obj_t heapscope_trace_imports(size_t n_args, const mp_obj_t *pos_args, mp_map_t *kw_args) {
    enum { ARG_enable, ARG_collect };
    static const mp_arg_t allowed_args[] = {
        { MP_QSTR_enable, MP_ARG_REQUIRED | MP_ARG_BOOL, {.u_bool = true} },
        { MP_QSTR_collect, MP_ARG_KW_ONLY | MP_ARG_BOOL, {.u_bool = false} },
    };
    mp_arg_val_t args[MP_ARRAY_SIZE(allowed_args)];
    mp_arg_parse_all(n_args, pos_args, kw_args, MP_ARRAY_SIZE(allowed_args), allowed_args, args);
    hs_check_vm();
    mp_obj_t builtins = MP_OBJ_FROM_PTR(&mp_module_builtins);
    mp_obj_t hook = MP_OBJ_FROM_PTR(&heapscope_import_obj);
    hs_import_collect = args[ARG_collect].u_bool;
    bool active = MP_STATE_VM(heapscope_original_import) != MP_OBJ_NULL;
    if (args[ARG_enable].u_bool && !active) {
        MP_STATE_VM(heapscope_original_import) = mp_load_attr(builtins, MP_QSTR___import__);
        hs_import_depth = 0;
        mp_store_attr(builtins, MP_QSTR___import__, hook);
    } else if (!args[ARG_enable].u_bool && active) {
        mp_store_attr(builtins, MP_QSTR___import__, MP_STATE_VM(heapscope_original_import));
        MP_STATE_VM(heapscope_original_import) = MP_OBJ_NULL;
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_KW(heapscope_trace_imports_obj, 1, heapscope_trace_imports);

static const mp_rom_map_elem_t heapscope_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_heapscope) },
    { MP_ROM_QSTR(MP_QSTR_snapshot), MP_ROM_PTR(&heapscope_snapshot_obj) },
    { MP_ROM_QSTR(MP_QSTR_start), MP_ROM_PTR(&heapscope_start_obj) },
    { MP_ROM_QSTR(MP_QSTR_stop), MP_ROM_PTR(&heapscope_stop_obj) },
    { MP_ROM_QSTR(MP_QSTR_poll), MP_ROM_PTR(&heapscope_poll_obj) },
    { MP_ROM_QSTR(MP_QSTR_mark), MP_ROM_PTR(&heapscope_mark_obj) },
    { MP_ROM_QSTR(MP_QSTR_hello), MP_ROM_PTR(&heapscope_hello_obj) },
    { MP_ROM_QSTR(MP_QSTR_trace_imports), MP_ROM_PTR(&heapscope_trace_imports_obj) },
    { MP_ROM_QSTR(MP_QSTR_dump), MP_ROM_PTR(&heapscope_dump_obj) },
    { MP_ROM_QSTR(MP_QSTR_PROTOCOL_VERSION), MP_ROM_INT(HS_PROTOCOL_VERSION) },
};
static MP_DEFINE_CONST_DICT(heapscope_module_globals, heapscope_module_globals_table);

const mp_obj_module_t heapscope_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&heapscope_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_heapscope, heapscope_user_cmodule);
MP_REGISTER_ROOT_POINTER(mp_obj_t heapscope_original_import);
