/*
 * heapscope encoding core. See hs_core.h and protocol/SPEC.md.
 */
#include "hs_core.h"

const char *const hs_type_names[HS_TYPE_COUNT] = {
    "unknown", "other", "tuple", "list", "dict", "str", "bytearray", "float",
    "function", "module", "set", "int", "closure", "bound_method", "instance", "type",
};

/* ---- CRC-32/ISO-HDLC, four bits at a time: a 64-byte table instead of 1 KiB. ---- */

static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu, 0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

static uint32_t crc_byte(uint32_t c, uint8_t b) {
    c ^= b;
    c = (c >> 4) ^ crc_nibble[c & 15];
    c = (c >> 4) ^ crc_nibble[c & 15];
    return c;
}

uint32_t hs_crc32(uint32_t crc, const uint8_t *data, size_t len) {
    uint32_t c = ~crc;
    for (size_t i = 0; i < len; i++) {
        c = crc_byte(c, data[i]);
    }
    return ~c;
}

/* ---- Frame writer: body bytes go through the CRC and the COBS block. ---- */

void hs_writer_init(hs_writer_t *w, hs_sink_fn sink, void *sink_ctx) {
    w->sink = sink;
    w->sink_ctx = sink_ctx;
    w->seq = 0;
    w->crc = 0;
    w->fill = 0;
}

static void cobs_flush(hs_writer_t *w) {
    w->block[0] = (uint8_t)(w->fill + 1);
    w->sink(w->sink_ctx, w->block, (size_t)w->fill + 1);
    w->fill = 0;
}

/* One body byte, already counted in the CRC. */
static void cobs_put(hs_writer_t *w, uint8_t b) {
    if (b == 0) {
        cobs_flush(w);
        return;
    }
    w->block[++w->fill] = b;
    if (w->fill == 254) {
        cobs_flush(w);
    }
}

static void put_u8(hs_writer_t *w, uint8_t b) {
    w->crc = crc_byte(w->crc, b);
    cobs_put(w, b);
}

static void put_bytes(hs_writer_t *w, const uint8_t *data, size_t len) {
    for (size_t i = 0; i < len; i++) {
        put_u8(w, data[i]);
    }
}

static void put_u16(hs_writer_t *w, uint16_t v) {
    put_u8(w, (uint8_t)v);
    put_u8(w, (uint8_t)(v >> 8));
}

static void put_u32(hs_writer_t *w, uint32_t v) {
    put_u16(w, (uint16_t)v);
    put_u16(w, (uint16_t)(v >> 16));
}

static void put_varint(hs_writer_t *w, uint64_t v) {
    while (v >= 0x80) {
        put_u8(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    put_u8(w, (uint8_t)v);
}

static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void put_str(hs_writer_t *w, const char *s, size_t len) {
    put_varint(w, len);
    put_bytes(w, (const uint8_t *)s, len);
}

size_t hs_utf8_cut(const char *s, size_t len, size_t max) {
    if (len <= max) {
        return len;
    }
    /* Back off over continuation bytes (10xxxxxx) so the cut lands before a character's first byte. */
    size_t n = max;
    while (n > 0 && ((uint8_t)s[n] & 0xC0u) == 0x80u) {
        n--;
    }
    return n;
}

/* A module name or mark label: at most HS_MAX_NAME bytes, whole characters only. */
static void put_name(hs_writer_t *w, const char *s, size_t len) {
    put_str(w, s, hs_utf8_cut(s, len, HS_MAX_NAME));
}

static void frame_begin(hs_writer_t *w, uint8_t type, uint32_t ms) {
    static const uint8_t start[2] = {0xFF, 0x00};
    w->sink(w->sink_ctx, start, 2);
    /* The CRC register is kept inverted while the frame is written. */
    w->crc = 0xFFFFFFFFu;
    w->fill = 0;
    put_u8(w, HS_PROTOCOL_VERSION);
    put_u8(w, type);
    put_u16(w, w->seq);
    put_u32(w, ms);
}

static void frame_end(hs_writer_t *w) {
    static const uint8_t end[1] = {0x00};
    put_u32(w, ~w->crc);
    cobs_flush(w);
    w->sink(w->sink_ctx, end, 1);
    w->seq++;
}

/* ---- Allocation table ---- */

/* Table byte i of an area, with the bits of blocks past its end cleared. */
static uint8_t atb_byte(const hs_area_t *a, size_t i) {
    uint8_t b = a->atb[i];
    size_t first_block = i * 4;
    if (first_block + 4 > a->blocks) {
        b &= (uint8_t)((1u << (2 * (a->blocks - first_block))) - 1);
    }
    return b;
}

static size_t atb_len(size_t blocks) {
    return (blocks + 3) / 4;
}

/* ---- Layout code (SPEC 3.4): bits least significant first, padded to a whole byte ---- */

enum { KIND_FREE = 0, KIND_HEAD = 1, KIND_TAIL = 2, KIND_MARK = 3 };

static unsigned kind_at(const hs_area_t *a, size_t block) {
    return (a->atb[block / 4] >> (2 * (block & 3))) & 3u;
}

/* First block at or after `from` (before `to`) that is not of `kind`; whole table bytes of
 * one kind are skipped four blocks at a time. */
static size_t run_end(const hs_area_t *a, size_t from, size_t to, unsigned kind) {
    static const uint8_t fill[4] = {0x00, 0x55, 0xAA, 0xFF};
    size_t i = from;
    while (i < to) {
        if ((i & 3) == 0 && i + 4 <= to && a->atb[i / 4] == fill[kind]) {
            i += 4;
        } else if (kind_at(a, i) == kind) {
            i++;
        } else {
            break;
        }
    }
    return i;
}

/* Without a writer (w NULL) only counts the bits. */
typedef struct {
    hs_writer_t *w;
    uint32_t acc;
    unsigned bits;
    size_t total;
} bit_writer_t;

/* The low `count` (at most 16) bits of `v`; nothing without a bit writer. */
static void put_bits(bit_writer_t *b, uint32_t v, unsigned count) {
    if (!b) {
        return;
    }
    b->total += count;
    if (!b->w) {
        return;
    }
    b->acc |= (v & ((1u << count) - 1u)) << b->bits;
    b->bits += count;
    while (b->bits >= 8) {
        put_u8(b->w, (uint8_t)b->acc);
        b->acc >>= 8;
        b->bits -= 8;
    }
}

/* Elias gamma of v >= 1: n zero bits, a one bit, the low n bits of v; n = floor(log2 v). */
static void put_gamma(bit_writer_t *b, uint64_t v) {
    if (!b) {
        return;
    }
    unsigned n = 0;
    while ((v >> n) > 1u) {
        n++;
    }
    for (unsigned z = n; z > 0;) {
        unsigned c = z < 16 ? z : 16;
        put_bits(b, 0, c);
        z -= c;
    }
    put_bits(b, 1, 1);
    for (unsigned shift = 0; shift < n;) {
        unsigned c = n - shift < 16 ? n - shift : 16;
        put_bits(b, (uint32_t)(v >> shift), c);
        shift += c;
    }
}

/* Compact code: type codes in the order their ranks start from (SPEC 3.4). */
static const uint8_t type_order[16] = {1, 5, 2, 8, 4, 3, 6, 7, 14, 13, 12, 9, 11, 10, 15, 0};

/* Blocks [from, to) of an area and how to code them. */
typedef struct {
    const hs_area_t *a;
    size_t index, from, to;
    hs_classify_fn classify;
    void *ctx;
    unsigned exact;
} layout_t;

/* The items of a range after the header, in the classic code to `classic` and in the compact
 * code to `compact` (SPEC 3.4); either may be NULL. One walk serves both. */
static void put_items(bit_writer_t *classic, bit_writer_t *compact, const layout_t *l) {
    /* Per allocation length (1, 2, 3, 4+ blocks) the type codes, most frequent so far first. */
    uint8_t order[4][16];
    uint16_t count[4][16] = {{0}};
    for (unsigned t = 0; t < 64; t++) {
        order[t / 16][t % 16] = type_order[t % 16];
    }
    size_t i = run_end(l->a, l->from, l->to, KIND_TAIL);
    put_gamma(classic, i - l->from + 1);
    put_gamma(compact, i - l->from + 1);
    while (i < l->to) {
        size_t e = run_end(l->a, i, l->to, KIND_FREE);
        size_t gap = e - i;
        i = e;
        size_t end = i < l->to ? run_end(l->a, i + 1, l->to, KIND_TAIL) : i;
        size_t len = end - i;
        put_gamma(classic, gap + 1);
        if (gap == 0 && len <= 3) {
            put_bits(compact, 1u << (len - 1), (unsigned)len);
        } else {
            /* 0000 gamma(len - 3), or 0001 gamma(gap) [gamma(len)] */
            put_bits(compact, gap ? 8u : 0u, 4);
            put_gamma(compact, gap ? gap : len - 3);
            if (gap && len) {
                put_gamma(compact, len);
            }
        }
        if (i >= l->to) {
            break;
        }
        unsigned k = kind_at(l->a, i);
        if (l->exact) {
            put_bits(classic, k, 2);
            put_bits(compact, k, 2);
        }
        if (k != KIND_TAIL) {
            uint8_t code = (uint8_t)(l->classify(l->ctx, l->index, i) & 0x0Fu);
            put_bits(classic, code, 4);
            /* Rank p: class c (p < 2, < 4, < 8, < 16) as c ones and a zero below 3, then the
             * low bits of p (one for class 0). The code is counted and moves ahead of codes
             * now counted fewer times. */
            uint8_t *o = order[len < 4 ? len - 1 : 3];
            uint16_t *n = count[len < 4 ? len - 1 : 3];
            unsigned rank = 0, c = 0;
            while (rank < 15 && o[rank] != code) {
                rank++;
            }
            while (rank >> (c + 1)) {
                c++;
            }
            put_bits(compact, (1u << c) - 1u, c < 3 ? c + 1 : 3);
            put_bits(compact, rank, c ? c : 1);
            if (n[rank] < 0xFFFFu) {
                n[rank]++;
            }
            for (; rank > 0 && n[rank] > n[rank - 1]; rank--) {
                uint16_t held = n[rank];
                n[rank] = n[rank - 1];
                n[rank - 1] = held;
                o[rank] = o[rank - 1];
                o[rank - 1] = code;
            }
        }
        put_gamma(classic, len);
        i = end;
    }
}

/* Blocks [from, to) of an area as the shorter of the classic and the compact code (classic on
 * a tie). `from` is a multiple of 4. */
static void put_layout(hs_writer_t *w, const hs_area_t *a, size_t area_index, size_t from, size_t to,
    hs_classify_fn classify, void *ctx) {
    layout_t l = {a, area_index, from, to, classify, ctx, 0};
    /* Items carry their kind only where the table has a mark or a tail after a free block. */
    for (size_t i = from; i < to && !l.exact; i++) {
        unsigned k = kind_at(a, i);
        l.exact = k == KIND_MARK || (k == KIND_TAIL && i > from && kind_at(a, i - 1) == KIND_FREE);
    }
    bit_writer_t classic = {NULL, 0, 0, 0}, compact = {NULL, 0, 0, 0};
    put_items(&classic, &compact, &l);
    unsigned use_compact = compact.total + !l.exact < classic.total;
    bit_writer_t b = {w, 0, 0, 0};
    /* Header: 0 classic, 10 compact, 110 classic exact, 111 compact exact. */
    if (l.exact) {
        put_bits(&b, 3u | use_compact << 2, 3);
    } else {
        put_bits(&b, use_compact, 1 + use_compact);
    }
    put_items(use_compact ? NULL : &b, use_compact ? &b : NULL, &l);
    if (b.bits > 0) {
        put_u8(w, (uint8_t)b.acc);
    }
}

/* ---- Figures (SPEC 3.5) ---- */

static void put_tlv(hs_writer_t *w, uint8_t tag, const uint64_t *values, size_t n) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        len += varint_len(values[i]);
    }
    put_u8(w, tag);
    put_varint(w, len);
    for (size_t i = 0; i < n; i++) {
        put_varint(w, values[i]);
    }
}

static void put_figures(hs_writer_t *w, const hs_figures_t *f) {
    if (f == NULL) {
        return;
    }
    if (f->has_gc) {
        uint64_t v[7] = {f->gc_total, f->gc_used, f->gc_free, f->gc_one_blocks, f->gc_two_blocks, f->gc_max_block, f->gc_max_free};
        put_tlv(w, 1, v, 7);
    }
    if (f->has_max_new_split) {
        put_tlv(w, 2, &f->max_new_split, 1);
    }
    if (f->has_stack) {
        uint64_t v[2] = {f->stack_used, f->stack_limit};
        put_tlv(w, 3, v, f->has_stack_limit ? 2 : 1);
    }
    if (f->has_mem) {
        uint64_t v[3] = {f->mem_total, f->mem_current, f->mem_peak};
        put_tlv(w, 4, v, 3);
    }
    for (size_t i = 0; i < f->system_heap_count; i++) {
        const hs_system_heap_t *h = &f->system_heaps[i];
        uint64_t v[5] = {h->caps, h->total, h->free, h->largest_free, h->min_free};
        put_tlv(w, 5, v, 5);
    }
    if (f->has_python) {
        uint64_t v[2] = {f->python_mem_alloc, f->python_mem_free};
        put_tlv(w, 6, v, 2);
    }
}

/* ---- Frames ---- */

void hs_send_hello(hs_writer_t *w, uint32_t ms, uint32_t block_size,
    const char *interpreter, size_t interpreter_len, const char *platform, size_t platform_len,
    const hs_area_t *areas, size_t area_count) {
    frame_begin(w, HS_FRAME_HELLO, ms);
    put_varint(w, block_size);
    put_str(w, interpreter, interpreter_len);
    put_str(w, platform, platform_len);
    put_varint(w, area_count);
    for (size_t i = 0; i < area_count; i++) {
        put_varint(w, areas[i].pool_start);
        put_varint(w, areas[i].blocks);
    }
    put_u8(w, HS_TYPE_COUNT);
    for (size_t i = 0; i < HS_TYPE_COUNT; i++) {
        const char *name = hs_type_names[i];
        size_t len = 0;
        while (name[len] != '\0') {
            len++;
        }
        put_str(w, name, len);
    }
    frame_end(w);
}

void hs_send_keyframe(hs_writer_t *w, uint32_t ms, uint32_t block_size,
    const hs_area_t *areas, size_t area_count,
    hs_classify_fn classify, void *classify_ctx, const hs_figures_t *figures) {
    frame_begin(w, HS_FRAME_KEYFRAME, ms);
    put_varint(w, block_size);
    put_varint(w, area_count);
    for (size_t i = 0; i < area_count; i++) {
        const hs_area_t *a = &areas[i];
        put_varint(w, a->pool_start);
        put_varint(w, a->blocks);
        put_layout(w, a, i, 0, a->blocks, classify, classify_ctx);
    }
    put_figures(w, figures);
    frame_end(w);
}

static size_t chunk_count(size_t blocks, uint32_t chunk_blocks) {
    return (blocks + chunk_blocks - 1) / chunk_blocks;
}

/* Table bytes of chunk k: [first, end). */
static void chunk_bytes(const hs_area_t *a, uint32_t chunk_blocks, size_t k, size_t *first, size_t *end) {
    size_t first_block = k * chunk_blocks;
    size_t end_block = first_block + chunk_blocks;
    if (end_block > a->blocks) {
        end_block = a->blocks;
    }
    *first = first_block / 4;
    *end = atb_len(end_block);
}

void hs_send_delta(hs_writer_t *w, uint32_t ms, uint16_t base_seq, uint32_t chunk_blocks,
    const hs_area_t *areas, size_t area_count,
    hs_classify_fn classify, void *classify_ctx,
    hs_changed_fn changed, void *changed_ctx, const hs_figures_t *figures) {
    frame_begin(w, HS_FRAME_DELTA, ms);
    put_u16(w, base_seq);
    put_varint(w, chunk_blocks);
    put_varint(w, area_count);
    for (size_t i = 0; i < area_count; i++) {
        const hs_area_t *a = &areas[i];
        size_t chunks = chunk_count(a->blocks, chunk_blocks);
        size_t n_changed = 0;
        for (size_t k = 0; k < chunks; k++) {
            n_changed += changed(changed_ctx, i, k) != 0;
        }
        put_varint(w, a->pool_start);
        put_varint(w, a->blocks);
        put_varint(w, n_changed);
        size_t next = 0;
        for (size_t k = 0; k < chunks; k++) {
            if (!changed(changed_ctx, i, k)) {
                continue;
            }
            size_t first = k * chunk_blocks;
            size_t end = first + chunk_blocks < a->blocks ? first + chunk_blocks : a->blocks;
            put_varint(w, k - next);
            next = k + 1;
            put_layout(w, a, i, first, end, classify, classify_ctx);
        }
    }
    put_figures(w, figures);
    frame_end(w);
}

/* ---- Delta tracking ---- */

void hs_tracker_reset(hs_tracker_t *t) {
    t->valid = 0;
    t->measured = 0;
    t->since_keyframe = 0;
}

/* FNV-1a over a chunk's table bytes and its heads' type codes. */
static uint32_t chunk_hash(const hs_area_t *a, size_t area_index, uint32_t chunk_blocks, size_t k,
    hs_classify_fn classify, void *ctx) {
    size_t first, end;
    chunk_bytes(a, chunk_blocks, k, &first, &end);
    uint32_t h = 2166136261u;
    for (size_t i = first; i < end; i++) {
        uint8_t b = atb_byte(a, i);
        h = (h ^ b) * 16777619u;
        for (unsigned bit = 0; bit < 4; bit++) {
            if ((b >> (2 * bit)) & 1u) {
                h = (h ^ classify(ctx, area_index, i * 4 + bit)) * 16777619u;
            }
        }
    }
    return h;
}

typedef struct {
    const hs_tracker_t *t;
    size_t offset[HS_MAX_AREAS]; /* index of each area's first chunk in t->hash */
} tracker_view_t;

static int tracker_changed(void *ctx, size_t area, size_t chunk) {
    const tracker_view_t *v = (const tracker_view_t *)ctx;
    size_t i = v->offset[area] + chunk;
    return (v->t->changed[i / 8] >> (i % 8)) & 1u;
}

static void count_sink(void *ctx, const uint8_t *data, size_t len) {
    (void)data;
    *(size_t *)ctx += len;
}

/* Smallest chunk size (a power of two, at least HS_MIN_CHUNK_BLOCKS) whose chunks fit the tracker. */
static uint32_t tracker_chunk_blocks(const hs_area_t *areas, size_t area_count) {
    uint32_t cb = HS_MIN_CHUNK_BLOCKS;
    for (;;) {
        size_t total = 0;
        for (size_t i = 0; i < area_count; i++) {
            total += chunk_count(areas[i].blocks, cb);
        }
        if (total <= HS_MAX_CHUNKS || cb >= (1u << 30)) {
            return cb;
        }
        cb *= 2;
    }
}

static int same_areas(const hs_tracker_t *t, const hs_area_t *areas, size_t area_count) {
    if (t->area_count != area_count) {
        return 0;
    }
    for (size_t i = 0; i < area_count; i++) {
        if (t->area_start[i] != areas[i].pool_start || t->area_blocks[i] != areas[i].blocks) {
            return 0;
        }
    }
    return 1;
}

/* Chunk layout of a snapshot for the tracker: the chunk size and each area's first chunk. */
typedef struct {
    int trackable;    /* the chunks fit the tracker */
    uint32_t chunk_blocks;
} chunk_plan_t;

static chunk_plan_t plan_chunks(const hs_area_t *areas, size_t area_count, tracker_view_t *view) {
    chunk_plan_t p;
    p.trackable = area_count <= HS_MAX_AREAS;
    p.chunk_blocks = tracker_chunk_blocks(areas, p.trackable ? area_count : 0);
    if (p.trackable) {
        size_t total = 0;
        for (size_t i = 0; i < area_count; i++) {
            view->offset[i] = total;
            total += chunk_count(areas[i].blocks, p.chunk_blocks);
        }
        p.trackable = total <= HS_MAX_CHUNKS;
    }
    return p;
}

static void set_changed(hs_tracker_t *t, size_t c, int on) {
    if (on) {
        t->changed[c / 8] |= (uint8_t)(1u << (c % 8));
    } else {
        t->changed[c / 8] &= (uint8_t)~(1u << (c % 8));
    }
}

void hs_measure_snapshot(hs_tracker_t *t, const hs_writer_t *w, uint32_t ms, uint32_t block_size,
    const hs_area_t *areas, size_t area_count,
    hs_classify_fn classify, void *classify_ctx, const hs_figures_t *figures, hs_snapshot_cost_t *cost) {
    tracker_view_t view;
    view.t = t;
    chunk_plan_t p = plan_chunks(areas, area_count, &view);
    int delta = p.trackable && t->valid && t->chunk_blocks == p.chunk_blocks && same_areas(t, areas, area_count);

    /* Note the chunks whose hash differs from the last snapshot sent (all of them when there is
     * no base). The hashes themselves are stored only when a snapshot is sent. */
    if (p.trackable) {
        for (size_t i = 0; i < area_count; i++) {
            for (size_t k = 0; k < chunk_count(areas[i].blocks, p.chunk_blocks); k++) {
                size_t c = view.offset[i] + k;
                set_changed(t, c, !delta || chunk_hash(&areas[i], i, p.chunk_blocks, k, classify, classify_ctx) != t->hash[c]);
            }
        }
    }
    t->measured = 1;

    hs_writer_t dry;
    cost->keyframe_bytes = 0;
    hs_writer_init(&dry, count_sink, &cost->keyframe_bytes);
    dry.seq = w->seq;
    hs_send_keyframe(&dry, ms, block_size, areas, area_count, classify, classify_ctx, figures);
    cost->delta_bytes = 0;
    if (delta) {
        hs_writer_init(&dry, count_sink, &cost->delta_bytes);
        dry.seq = w->seq;
        hs_send_delta(&dry, ms, t->base_seq, p.chunk_blocks, areas, area_count, classify, classify_ctx,
            tracker_changed, &view, figures);
    }
    cost->keyframe_due = t->since_keyframe + 1 >= HS_KEYFRAME_EVERY;
}

int hs_send_measured(hs_writer_t *w, hs_tracker_t *t, int frame_type, uint32_t ms, uint32_t block_size,
    const hs_area_t *areas, size_t area_count,
    hs_classify_fn classify, void *classify_ctx, const hs_figures_t *figures) {
    tracker_view_t view;
    view.t = t;
    chunk_plan_t p = plan_chunks(areas, area_count, &view);
    int delta = frame_type == HS_FRAME_DELTA && t->measured && p.trackable && t->valid
        && t->chunk_blocks == p.chunk_blocks && same_areas(t, areas, area_count);
    uint16_t seq = w->seq;
    if (delta) {
        hs_send_delta(w, ms, t->base_seq, p.chunk_blocks, areas, area_count, classify, classify_ctx,
            tracker_changed, &view, figures);
        t->since_keyframe++;
    } else {
        hs_send_keyframe(w, ms, block_size, areas, area_count, classify, classify_ctx, figures);
        t->since_keyframe = 0;
    }
    /* The tracker now describes this snapshot: only the changed chunks have new hashes. */
    t->valid = p.trackable && t->measured;
    t->measured = 0;
    if (t->valid) {
        for (size_t i = 0; i < area_count; i++) {
            for (size_t k = 0; k < chunk_count(areas[i].blocks, p.chunk_blocks); k++) {
                if (tracker_changed(&view, i, k)) {
                    t->hash[view.offset[i] + k] = chunk_hash(&areas[i], i, p.chunk_blocks, k, classify, classify_ctx);
                }
            }
        }
        t->base_seq = seq;
        t->chunk_blocks = p.chunk_blocks;
        t->area_count = area_count;
        for (size_t i = 0; i < area_count; i++) {
            t->area_start[i] = areas[i].pool_start;
            t->area_blocks[i] = areas[i].blocks;
        }
    }
    return delta ? HS_FRAME_DELTA : HS_FRAME_KEYFRAME;
}

int hs_send_snapshot(hs_writer_t *w, hs_tracker_t *t, uint32_t ms, uint32_t block_size,
    const hs_area_t *areas, size_t area_count,
    hs_classify_fn classify, void *classify_ctx, const hs_figures_t *figures) {
    hs_snapshot_cost_t cost;
    hs_measure_snapshot(t, w, ms, block_size, areas, area_count, classify, classify_ctx, figures, &cost);
    int delta = cost.delta_bytes != 0 && !cost.keyframe_due && cost.delta_bytes < cost.keyframe_bytes;
    return hs_send_measured(w, t, delta ? HS_FRAME_DELTA : HS_FRAME_KEYFRAME, ms, block_size,
        areas, area_count, classify, classify_ctx, figures);
}

int hs_send_snapshot_within(hs_writer_t *w, hs_tracker_t *t, uint32_t ms, uint32_t block_size,
    const hs_area_t *areas, size_t area_count,
    hs_classify_fn classify, void *classify_ctx, const hs_figures_t *figures, size_t budget) {
    hs_snapshot_cost_t cost;
    hs_measure_snapshot(t, w, ms, block_size, areas, area_count, classify, classify_ctx, figures, &cost);
    int have_delta = cost.delta_bytes != 0;
    int key_fits = cost.keyframe_bytes <= budget;
    int delta_fits = have_delta && cost.delta_bytes <= budget;
    /* A due keyframe (or one without a base) goes if it fits, else a delta that fits goes and
     * the keyframe waits; otherwise the smaller of the two, if it fits. */
    int type;
    if (!have_delta || cost.keyframe_due) {
        type = key_fits ? HS_FRAME_KEYFRAME : delta_fits ? HS_FRAME_DELTA : HS_FRAME_NONE;
    } else if (cost.delta_bytes < cost.keyframe_bytes) {
        type = delta_fits ? HS_FRAME_DELTA : HS_FRAME_NONE;
    } else {
        type = key_fits ? HS_FRAME_KEYFRAME : HS_FRAME_NONE;
    }
    if (type == HS_FRAME_NONE) {
        return HS_FRAME_NONE; /* measured only: the tracker still describes the last frame sent */
    }
    return hs_send_measured(w, t, type, ms, block_size, areas, area_count, classify, classify_ctx, figures);
}

/* ---- Events (SPEC 3.6) ---- */

void hs_send_import_begin(hs_writer_t *w, uint32_t ms, uint32_t depth, const char *name, size_t name_len) {
    frame_begin(w, HS_FRAME_EVENT, ms);
    put_u8(w, 1);
    put_varint(w, depth);
    put_name(w, name, name_len);
    frame_end(w);
}

void hs_send_import_end(hs_writer_t *w, uint32_t ms, uint32_t depth, const char *name, size_t name_len,
    int ok, uint64_t elapsed_us) {
    frame_begin(w, HS_FRAME_EVENT, ms);
    put_u8(w, 2);
    put_varint(w, depth);
    put_name(w, name, name_len);
    put_u8(w, ok ? 1 : 0);
    put_varint(w, elapsed_us);
    frame_end(w);
}

void hs_send_mark(hs_writer_t *w, uint32_t ms, const char *label, size_t label_len) {
    frame_begin(w, HS_FRAME_EVENT, ms);
    put_u8(w, 3);
    put_name(w, label, label_len);
    frame_end(w);
}

void hs_send_area_added(hs_writer_t *w, uint32_t ms, uint64_t pool_start, size_t blocks) {
    frame_begin(w, HS_FRAME_EVENT, ms);
    put_u8(w, 4);
    put_varint(w, pool_start);
    put_varint(w, blocks);
    frame_end(w);
}

void hs_send_area_removed(hs_writer_t *w, uint32_t ms, uint64_t pool_start) {
    frame_begin(w, HS_FRAME_EVENT, ms);
    put_u8(w, 5);
    put_varint(w, pool_start);
    frame_end(w);
}

void hs_send_stream_start(hs_writer_t *w, uint32_t ms, uint32_t period_ms) {
    frame_begin(w, HS_FRAME_EVENT, ms);
    put_u8(w, 6);
    put_varint(w, period_ms);
    frame_end(w);
}

void hs_send_stream_stop(hs_writer_t *w, uint32_t ms) {
    frame_begin(w, HS_FRAME_EVENT, ms);
    put_u8(w, 7);
    frame_end(w);
}

void hs_send_skipped(hs_writer_t *w, uint32_t ms, uint32_t count) {
    frame_begin(w, HS_FRAME_EVENT, ms);
    put_u8(w, 8);
    put_varint(w, count);
    frame_end(w);
}

/* ---- Heap dump (SPEC 3.7) ---- */

void hs_send_dump_begin(hs_writer_t *w, uint32_t ms, uint32_t word_size, uint32_t block_size, uint64_t mem_free) {
    frame_begin(w, HS_FRAME_DUMP, ms);
    put_u8(w, HS_DUMP_BEGIN);
    put_varint(w, word_size);
    put_varint(w, block_size);
    put_varint(w, mem_free);
    frame_end(w);
}

static uint64_t word_at(const uint8_t *p, uint32_t word_size) {
    uint64_t v = 0;
    for (uint32_t i = word_size; i > 0; i--) {
        v = (v << 8) | p[i - 1];
    }
    return v;
}

void hs_send_dump_blocks(hs_writer_t *w, uint32_t ms, uint32_t word_size, uint32_t block_size,
    uint64_t pool_start, size_t area_blocks, size_t first, size_t count, const uint8_t *data) {
    uint64_t pool_end = pool_start + (uint64_t)area_blocks * block_size;
    /* Literals up to what a varint of word_size bytes holds beside the tag; larger go raw. */
    uint64_t small_limit = (uint64_t)1 << (7 * word_size - 2);
    size_t words = count * block_size / word_size;
    size_t words_per_block = block_size / word_size;
    frame_begin(w, HS_FRAME_DUMP, ms);
    put_u8(w, HS_DUMP_BLOCKS);
    put_varint(w, word_size);
    put_varint(w, block_size);
    put_varint(w, pool_start);
    put_varint(w, area_blocks);
    put_varint(w, first);
    put_varint(w, count);
    size_t i = 0;
    while (i < words) {
        uint64_t v = word_at(data + i * word_size, word_size);
        if (v == 0) {
            size_t n = 1;
            while (i + n < words && word_at(data + (i + n) * word_size, word_size) == 0) {
                n++;
            }
            put_varint(w, n >= 2 ? ((uint64_t)n << 2) | 3 : 0);
            i += n >= 2 ? n : 1;
            continue;
        }
        if (v >= pool_start && v < pool_end && (v - pool_start) % block_size == 0) {
            int64_t delta = (int64_t)((v - pool_start) / block_size) - (int64_t)(first + i / words_per_block);
            uint64_t zigzag = delta < 0 ? ((uint64_t)(-(delta + 1)) << 1) | 1 : (uint64_t)delta << 1;
            put_varint(w, (zigzag << 2) | 1);
        } else if (v < small_limit) {
            put_varint(w, v << 2);
        } else {
            put_u8(w, 2);
            put_bytes(w, data + i * word_size, word_size);
        }
        i++;
    }
    frame_end(w);
}

void hs_send_dump_name(hs_writer_t *w, uint32_t ms, uint8_t kind, uint64_t address,
    const char *prefix, size_t prefix_len, const char *name, size_t name_len) {
    frame_begin(w, HS_FRAME_DUMP, ms);
    put_u8(w, HS_DUMP_NAME);
    put_u8(w, kind);
    put_varint(w, address);
    put_name(w, prefix, prefix_len);
    put_name(w, name, name_len);
    frame_end(w);
}

void hs_send_dump_end(hs_writer_t *w, uint32_t ms, uint32_t frames, uint64_t blocks) {
    frame_begin(w, HS_FRAME_DUMP, ms);
    put_u8(w, HS_DUMP_END);
    put_varint(w, frames);
    put_varint(w, blocks);
    frame_end(w);
}
