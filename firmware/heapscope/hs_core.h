/*
 * heapscope encoding core: the wire format of protocol/SPEC.md, version 2.
 *
 * Portable C99: no MicroPython headers, no malloc, no stdio. Frames are streamed through a
 * caller's sink as they are encoded; the only buffer is one COBS block (255 bytes) in the
 * writer. Delta tracking keeps one 32-bit hash per chunk of the allocation table.
 */
#ifndef HEAPSCOPE_HS_CORE_H
#define HEAPSCOPE_HS_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HS_PROTOCOL_VERSION 2

enum {
    HS_FRAME_NONE = 0, /* no frame: a snapshot skipped for the line budget */
    HS_FRAME_HELLO = 1,
    HS_FRAME_KEYFRAME = 2,
    HS_FRAME_DELTA = 3,
    HS_FRAME_EVENT = 4,
    HS_FRAME_DUMP = 5,
};

/* Parts of a heap dump (SPEC 3.7), the first byte of a dump frame's payload. */
enum {
    HS_DUMP_BEGIN = 0,
    HS_DUMP_BLOCKS = 1,
    HS_DUMP_NAME = 2,
    HS_DUMP_END = 3,
};

/* What a dump name names (SPEC 3.7). */
enum {
    HS_NAME_TYPE = 0,   /* a built-in type, outside the heap */
    HS_NAME_MODULE = 1, /* a module object */
    HS_NAME_GLOBAL = 2, /* a module global: prefix is the module ("" for __main__) */
    HS_NAME_CLASS = 3,  /* a class defined at run time */
    HS_NAME_ROOT = 4,   /* a word the GC starts marking from */
};

/* The standard type table (SPEC 3.1): code i is hs_type_names[i]. */
enum {
    HS_TYPE_UNKNOWN = 0,
    HS_TYPE_OTHER,
    HS_TYPE_TUPLE,
    HS_TYPE_LIST,
    HS_TYPE_DICT,
    HS_TYPE_STR,
    HS_TYPE_BYTEARRAY,
    HS_TYPE_FLOAT,
    HS_TYPE_FUNCTION,
    HS_TYPE_MODULE,
    HS_TYPE_SET,
    HS_TYPE_INT,
    HS_TYPE_CLOSURE,
    HS_TYPE_BOUND_METHOD,
    HS_TYPE_INSTANCE,
    HS_TYPE_TYPE,
    HS_TYPE_COUNT
};

extern const char *const hs_type_names[HS_TYPE_COUNT];

/* Receives encoded bytes, in order. Called with at most 255 bytes at a time. */
typedef void (*hs_sink_fn)(void *ctx, const uint8_t *data, size_t len);

/* Type code (0..15) of the allocation whose head is `block` of area `area`. */
typedef uint8_t (*hs_classify_fn)(void *ctx, size_t area, size_t block);

/* Frame writer: header, CRC and COBS, streamed. */
typedef struct {
    hs_sink_fn sink;
    void *sink_ctx;
    uint16_t seq;      /* sequence number of the next frame */
    uint32_t crc;      /* running CRC of the frame being written */
    uint8_t block[255]; /* COBS block being filled: block[0] is its code byte */
    uint8_t fill;      /* data bytes in block[1..] */
} hs_writer_t;

/* One heap area as the device holds it. */
typedef struct {
    uint64_t pool_start;
    const uint8_t *atb; /* ceil(blocks / 4) bytes, the device's allocation table */
    size_t blocks;
} hs_area_t;

typedef struct {
    uint32_t caps;
    uint64_t total, free, largest_free, min_free;
} hs_system_heap_t;

/* Figures the device reports beside the layout (SPEC 3.5); absent ones are left out. */
typedef struct {
    int has_gc;
    uint64_t gc_total, gc_used, gc_free, gc_one_blocks, gc_two_blocks, gc_max_block, gc_max_free;
    int has_max_new_split;
    uint64_t max_new_split;
    int has_stack, has_stack_limit;
    uint64_t stack_used, stack_limit;
    int has_mem;
    uint64_t mem_total, mem_current, mem_peak;
    size_t system_heap_count;
    const hs_system_heap_t *system_heaps;
    int has_python;
    uint64_t python_mem_alloc, python_mem_free;
} hs_figures_t;

/* Delta tracking: what the last snapshot sent looked like, one 32-bit hash per chunk.
 *
 * Chunks are as small as the tracker allows (HS_MIN_CHUNK_BLOCKS, a power of two, grown until
 * every area's chunks fit HS_MAX_CHUNKS): a delta resends whole changed chunks, so small chunks
 * keep a delta of scattered changes small. 8 blocks on a 119 KB ESP32 heap (933 chunks), 128 on
 * a 2 MB SPIRAM heap. */
#ifndef HS_MAX_AREAS
#define HS_MAX_AREAS 16
#endif
#ifndef HS_MAX_CHUNKS
#define HS_MAX_CHUNKS 1024
#endif
#ifndef HS_KEYFRAME_EVERY
#define HS_KEYFRAME_EVERY 16
#endif
#define HS_MIN_CHUNK_BLOCKS 8

typedef struct {
    uint8_t valid;               /* a snapshot was sent and the hashes describe it */
    uint8_t measured;            /* `changed` holds hs_measure_snapshot's result */
    uint16_t base_seq;           /* seq of the frame that carried it */
    uint16_t since_keyframe;     /* snapshots sent since the last keyframe */
    uint32_t chunk_blocks;       /* chunk size the hashes were taken with */
    size_t area_count;
    uint64_t area_start[HS_MAX_AREAS];
    size_t area_blocks[HS_MAX_AREAS];
    uint32_t hash[HS_MAX_CHUNKS];
    uint8_t changed[HS_MAX_CHUNKS / 8]; /* chunks that differ from the last snapshot sent */
} hs_tracker_t;

/* Bytes of memory delta tracking takes. */
#define HS_TRACKER_BYTES (sizeof(hs_tracker_t))

void hs_writer_init(hs_writer_t *w, hs_sink_fn sink, void *sink_ctx);

/* CRC-32/ISO-HDLC, continued from `crc` (0 to start). */
uint32_t hs_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* Frames. `ms` is the device clock. Strings are bytes with a length (not NUL-terminated). */
void hs_send_hello(hs_writer_t *w, uint32_t ms, uint32_t block_size,
    const char *interpreter, size_t interpreter_len, const char *platform, size_t platform_len,
    const hs_area_t *areas, size_t area_count);

void hs_send_keyframe(hs_writer_t *w, uint32_t ms, uint32_t block_size,
    const hs_area_t *areas, size_t area_count,
    hs_classify_fn classify, void *classify_ctx, const hs_figures_t *figures);

/* Delta against the snapshot of frame `base_seq`, chunks of `chunk_blocks` (multiple of 4).
 * `changed` lists, per area, whether each chunk is sent: changed(ctx, area, chunk) != 0.
 * Areas the base lacks must have all their chunks marked changed. */
typedef int (*hs_changed_fn)(void *ctx, size_t area, size_t chunk);
void hs_send_delta(hs_writer_t *w, uint32_t ms, uint16_t base_seq, uint32_t chunk_blocks,
    const hs_area_t *areas, size_t area_count,
    hs_classify_fn classify, void *classify_ctx,
    hs_changed_fn changed, void *changed_ctx, const hs_figures_t *figures);

/* What the next snapshot costs on the line, measured exactly (encoded into a counting sink). */
typedef struct {
    size_t keyframe_bytes;   /* as a keyframe */
    size_t delta_bytes;      /* as a delta against the last snapshot sent; 0 if there is no base */
    int keyframe_due;        /* HS_KEYFRAME_EVERY - 1 deltas went since the last keyframe */
} hs_snapshot_cost_t;

/* Measures the heap as it is now; sends nothing. Pair it with hs_send_measured on the same,
 * unchanged heap (hold the heap lock across both), or measure again later: a measure that is
 * not followed by a send changes nothing the next snapshot depends on. `w` gives the seq. */
void hs_measure_snapshot(hs_tracker_t *t, const hs_writer_t *w, uint32_t ms, uint32_t block_size,
    const hs_area_t *areas, size_t area_count,
    hs_classify_fn classify, void *classify_ctx, const hs_figures_t *figures, hs_snapshot_cost_t *cost);

/* Sends the measured snapshot as `frame_type`: HS_FRAME_DELTA (a keyframe instead when the
 * measure found no base) or HS_FRAME_KEYFRAME. Updates the tracker. Returns the type sent. */
int hs_send_measured(hs_writer_t *w, hs_tracker_t *t, int frame_type, uint32_t ms, uint32_t block_size,
    const hs_area_t *areas, size_t area_count,
    hs_classify_fn classify, void *classify_ctx, const hs_figures_t *figures);

/* A snapshot as a keyframe or a delta: measure, then a delta when there is a base, fewer
 * than HS_KEYFRAME_EVERY - 1 deltas went since the last keyframe, and the delta is smaller.
 * Returns the frame type sent. */
int hs_send_snapshot(hs_writer_t *w, hs_tracker_t *t, uint32_t ms, uint32_t block_size,
    const hs_area_t *areas, size_t area_count,
    hs_classify_fn classify, void *classify_ctx, const hs_figures_t *figures);

/* The same within a budget of `budget` bytes on the line (frame start to end byte): a keyframe
 * when one is due and fits, else a delta when it fits (a due keyframe waits for a snapshot it
 * fits in), else nothing: HS_FRAME_NONE, and the tracker keeps its base so the next delta
 * covers what changed meanwhile. hs_send_snapshot is this with an unlimited budget. */
int hs_send_snapshot_within(hs_writer_t *w, hs_tracker_t *t, uint32_t ms, uint32_t block_size,
    const hs_area_t *areas, size_t area_count,
    hs_classify_fn classify, void *classify_ctx, const hs_figures_t *figures, size_t budget);

/* Forget the last snapshot: the next one is a keyframe. */
void hs_tracker_reset(hs_tracker_t *t);

/* Names and labels longer than this are cut, at a UTF-8 character boundary. */
#define HS_MAX_NAME 255

/* The length of `s` cut to at most `max` bytes without splitting a UTF-8 character. */
size_t hs_utf8_cut(const char *s, size_t len, size_t max);

void hs_send_import_begin(hs_writer_t *w, uint32_t ms, uint32_t depth, const char *name, size_t name_len);
void hs_send_import_end(hs_writer_t *w, uint32_t ms, uint32_t depth, const char *name, size_t name_len,
    int ok, uint64_t elapsed_us);
void hs_send_mark(hs_writer_t *w, uint32_t ms, const char *label, size_t label_len);
void hs_send_area_added(hs_writer_t *w, uint32_t ms, uint64_t pool_start, size_t blocks);
void hs_send_area_removed(hs_writer_t *w, uint32_t ms, uint64_t pool_start);
void hs_send_stream_start(hs_writer_t *w, uint32_t ms, uint32_t period_ms);
void hs_send_stream_stop(hs_writer_t *w, uint32_t ms);
/* `count` periodic snapshots were skipped for the line budget since the last one sent. */
void hs_send_skipped(hs_writer_t *w, uint32_t ms, uint32_t count);

/* ---- Heap dump (SPEC 3.7) ---- */

void hs_send_dump_begin(hs_writer_t *w, uint32_t ms, uint32_t word_size, uint32_t block_size, uint64_t mem_free);
/* `count` blocks of an area from block `first`, their words as the device holds them (`data`,
 * word-aligned, `count * block_size` bytes). Words that point at a block start of the same
 * area go as block deltas, zero runs as counts, small values as themselves. */
void hs_send_dump_blocks(hs_writer_t *w, uint32_t ms, uint32_t word_size, uint32_t block_size,
    uint64_t pool_start, size_t area_blocks, size_t first, size_t count, const uint8_t *data);
/* A name: `prefix` "." `name` on the host when prefix is not empty. */
void hs_send_dump_name(hs_writer_t *w, uint32_t ms, uint8_t kind, uint64_t address,
    const char *prefix, size_t prefix_len, const char *name, size_t name_len);
void hs_send_dump_end(hs_writer_t *w, uint32_t ms, uint32_t frames, uint64_t blocks);

#ifdef __cplusplus
}
#endif

#endif /* HEAPSCOPE_HS_CORE_H */
