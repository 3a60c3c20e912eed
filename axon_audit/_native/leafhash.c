/* axon_audit._native.leafhash: the Merkle log's hot loops in C, the GIL released.
 *
 * Python has no batched SHA-256 and builds each event's canonical text with a dozen
 * polars string passes (~1.45 CPU-s per million events, measured). Here one pass per
 * event writes the canonical text (RFC 8785) into a scratch buffer and hashes it with
 * OpenSSL's SHA-256 (SHA-NI where the CPU has it: the library Python's hashlib uses);
 * another writes the export format's objects from the same field buffers.
 *
 * What the texts are is decided in Python (axon_audit/integrity/native.py): it passes
 * each field as Arrow buffers with the kind of literal to write, and the key sequence
 * of each object. Nothing here knows the event schema. Every entry point checks its
 * buffers' sizes against the offsets before it reads them.
 *
 *   leaves(n, fields, members, threads) -> 32-byte leaf hashes, SHA-256(0x00 || object)
 *   lines(n, fields, members, sep) -> the objects' texts, `sep` between them
 *   sha256_rows(rows, width, prefix, threads) -> digests      (fixed-width rows)
 *   sha256_values(offsets, data, offset, n, prefix) -> digests (an Arrow large_binary)
 *   otlp_records(n, fields, members, kinds, ts, body, severity, observed) -> OTLP LogRecords
 */
#define PY_SSIZE_T_CLEAN
/* The low-level SHA256_* calls: deprecated in OpenSSL 3 for EVP, whose per-message setup
 * costs more than hashing a 300-byte event; they stay in libcrypto 3.x. */
#define OPENSSL_API_COMPAT 0x10100000L
#include <Python.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

enum { K_STR = 0, K_RAW = 1, K_TS = 2, K_LIST = 3, K_DICT = 4 };
#define MAX_FIELDS 32
#define MAX_THREADS 16
#define KEEP_MAX ((size_t)64 << 20) /* lines: the most a thread keeps between calls */

typedef struct {
    int kind;
    Py_buffer b[6];       /* STR/RAW: validity, offsets, data; TS: validity, values; LIST: + child validity,
                             offsets, data; DICT: validity, indices, dictionary offsets, dictionary data */
    int have[6];
    int64_t offset;       /* the array's offset (rows) */
    int64_t child_offset; /* LIST: the child array's offset; DICT: the dictionary's */
    int width;            /* DICT: bytes per index (1, 2, 4 or 8, unsigned) */
    int64_t dict_len;     /* DICT: entries in the dictionary */
    const char *dflt;     /* RAW: the text written for null */
    Py_ssize_t dflt_len;
} Field;

typedef struct {
    const char *key;      /* the literal before the value: `{"key":` or `,"key":` */
    Py_ssize_t key_len;
    int field;
} Member;

typedef struct { char *p; size_t len, cap; int failed; } Buf;

static void buf_reserve(Buf *b, size_t extra) {
    if (b->failed || b->len + extra <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) { b->failed = 1; return; }
    b->p = p; b->cap = cap;
}
static inline void put(Buf *b, const char *s, size_t n) {
    buf_reserve(b, n);
    if (b->failed) return;
    memcpy(b->p + b->len, s, n); b->len += n;
}

static inline int valid(const Py_buffer *v, int have, int64_t i) {
    if (!have) return 1;
    return (((const uint8_t *)v->buf)[i >> 3] >> (i & 7)) & 1;
}

/* A JSON string literal as RFC 8785 writes it (and polars' JSON writer: checked in the tests). */
static void put_escaped(Buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    buf_reserve(b, n * 6 + 2);
    if (b->failed) return;
    char *o = b->p + b->len;
    *o++ = '"';
    size_t clean = 0; /* the prefix that needs no escape, copied at once: most values are all of it */
    while (clean < n && (unsigned char)s[clean] >= 0x20 && s[clean] != '"' && s[clean] != '\\') clean++;
    memcpy(o, s, clean);
    o += clean;
    for (size_t i = clean; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') { *o++ = (char)c; continue; }
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default: *o++ = 'u'; *o++ = '0'; *o++ = '0'; *o++ = hex[c >> 4]; *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
}

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days). */
static void civil(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static inline char *digits(char *o, uint64_t v, int width) {
    for (int i = width - 1; i >= 0; i--) { o[i] = (char)('0' + v % 10); v /= 10; }
    return o + width;
}

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ": years 0001-9999 (the door refuses the rest), UTC. */
static void put_timestamp(Buf *b, int64_t us) {
    int64_t day = us >= 0 ? us / 86400000000LL : -((-us + 86399999999LL) / 86400000000LL);
    int64_t rem = us - day * 86400000000LL;
    int64_t y; unsigned m, d;
    civil(day, &y, &m, &d);
    buf_reserve(b, 32);
    if (b->failed) return;
    char *o = b->p + b->len;
    *o++ = '"';
    o = digits(o, (uint64_t)(y < 0 ? 0 : y), 4); *o++ = '-';
    o = digits(o, m, 2); *o++ = '-';
    o = digits(o, d, 2); *o++ = 'T';
    uint64_t s = (uint64_t)(rem / 1000000);
    o = digits(o, s / 3600, 2); *o++ = ':';
    o = digits(o, s / 60 % 60, 2); *o++ = ':';
    o = digits(o, s % 60, 2); *o++ = '.';
    o = digits(o, (uint64_t)(rem % 1000000), 6);
    *o++ = 'Z'; *o++ = '"';
    b->len = (size_t)(o - b->p);
}

static void put_value(Buf *b, const Field *f, int64_t row) {
    int64_t i = row + f->offset;
    if (f->kind == K_TS) {
        if (!valid(&f->b[0], f->have[0], i)) { put(b, "null", 4); return; }
        put_timestamp(b, ((const int64_t *)f->b[1].buf)[i]);
        return;
    }
    if (f->kind == K_LIST) {
        if (!valid(&f->b[0], f->have[0], i)) { put(b, "[]", 2); return; }
        const int64_t *lo = (const int64_t *)f->b[1].buf;
        const int64_t *co = (const int64_t *)f->b[4].buf;
        const char *cd = (const char *)f->b[5].buf;
        put(b, "[", 1);
        for (int64_t j = lo[i]; j < lo[i + 1]; j++) {
            if (j > lo[i]) put(b, ",", 1);
            int64_t k = j + f->child_offset;
            if (!valid(&f->b[3], f->have[3], k)) put(b, "null", 4);
            else put_escaped(b, cd + co[k], (size_t)(co[k + 1] - co[k]));
        }
        put(b, "]", 1);
        return;
    }
    if (f->kind == K_DICT) {
        if (!valid(&f->b[0], f->have[0], i)) { put(b, "null", 4); return; }
        const uint8_t *ix = f->b[1].buf;
        uint64_t k = f->width == 1 ? ix[i] : f->width == 2 ? ((const uint16_t *)ix)[i]
                   : f->width == 4 ? ((const uint32_t *)ix)[i] : ((const uint64_t *)ix)[i];
        const int64_t *off = (const int64_t *)f->b[2].buf + f->child_offset;
        put_escaped(b, (const char *)f->b[3].buf + off[k], (size_t)(off[k + 1] - off[k]));
        return;
    }
    if (!valid(&f->b[0], f->have[0], i)) {
        if (f->kind == K_RAW) put(b, f->dflt, (size_t)f->dflt_len);
        else put(b, "null", 4);
        return;
    }
    const int64_t *off = (const int64_t *)f->b[1].buf;
    const char *data = (const char *)f->b[2].buf;
    if (f->kind == K_RAW) put(b, data + off[i], (size_t)(off[i + 1] - off[i]));
    else put_escaped(b, data + off[i], (size_t)(off[i + 1] - off[i]));
}

static void put_object(Buf *b, const Field *fields, const Member *members, int nm, int64_t row) {
    for (int k = 0; k < nm; k++) {
        put(b, members[k].key, (size_t)members[k].key_len);
        put_value(b, &fields[members[k].field], row);
    }
    put(b, "}", 1);
}

typedef struct {
    const Field *fields;
    const Member *members;
    int nm;
    int64_t start, end;
    uint8_t *leaves;      /* 32 bytes per row of this range */
    int failed;
} Job;

static void *run_job(void *arg) {
    Job *j = arg;
    Buf scratch = {0};
    for (int64_t r = j->start; r < j->end; r++) {
        scratch.len = 0;
        put(&scratch, "\x00", 1); /* RFC 6962's leaf prefix */
        put_object(&scratch, j->fields, j->members, j->nm, r);
        if (scratch.failed) break;
        SHA256_CTX ctx;
        SHA256_Init(&ctx);
        SHA256_Update(&ctx, scratch.p, scratch.len);
        SHA256_Final(j->leaves + 32 * r, &ctx);
    }
    j->failed = scratch.failed;
    free(scratch.p);
    return NULL;
}

static int get_buffer(PyObject *obj, Py_buffer *view, int *have, Py_ssize_t need, const char *what) {
    *have = 0;
    if (obj == Py_None) {
        if (need < 0) return 0; /* optional: absent */
        PyErr_Format(PyExc_ValueError, "%s: a buffer is required", what);
        return -1;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0) return -1;
    *have = 1;
    if (need > 0 && view->len < need) {
        PyErr_Format(PyExc_ValueError, "%s: buffer of %zd bytes, %zd needed", what, view->len, need);
        return -1;
    }
    return 0;
}

static void release_fields(Field *fields, int nf) {
    for (int f = 0; f < nf; f++)
        for (int k = 0; k < 6; k++)
            if (fields[f].have[k]) PyBuffer_Release(&fields[f].b[k]);
}

/* Checks an offsets buffer of rows [offset, offset + n] against its data buffer. */
static int check_offsets(const Py_buffer *off, int64_t offset, int64_t n, Py_ssize_t data_len, const char *what) {
    const int64_t *o = off->buf;
    for (int64_t i = offset; i < offset + n; i++)
        if (o[i] < 0 || o[i + 1] < o[i] || o[i + 1] > data_len) {
            PyErr_Format(PyExc_ValueError, "%s: offsets out of range at row %lld", what, (long long)(i - offset));
            return -1;
        }
    return 0;
}

static int parse_field(PyObject *spec, Field *f, int64_t n) {
    PyObject *kind_obj = PyTuple_Check(spec) && PyTuple_GET_SIZE(spec) >= 1 ? PyTuple_GET_ITEM(spec, 0) : NULL;
    if (!kind_obj) { PyErr_SetString(PyExc_TypeError, "a field is a tuple (kind, ...)"); return -1; }
    f->kind = (int)PyLong_AsLong(kind_obj);
    Py_ssize_t len = PyTuple_GET_SIZE(spec);
    PyObject **it = &PyTuple_GET_ITEM(spec, 0);
    if ((f->kind == K_STR && len != 5) || (f->kind == K_RAW && len != 6) || (f->kind == K_TS && len != 4)
        || (f->kind == K_LIST && len != 8) || (f->kind == K_DICT && len != 9) || f->kind < 0 || f->kind > 4) {
        PyErr_Format(PyExc_ValueError, "field of kind %d has %zd items", f->kind, len);
        return -1;
    }
    if (f->kind == K_TS) {
        f->offset = PyLong_AsLongLong(it[3]);
        if (PyErr_Occurred()) return -1;
        if (get_buffer(it[1], &f->b[0], &f->have[0], -1, "validity") < 0) return -1;
        if (f->have[0] && f->b[0].len * 8 < f->offset + n) { PyErr_SetString(PyExc_ValueError, "validity too short"); return -1; }
        return get_buffer(it[2], &f->b[1], &f->have[1], (Py_ssize_t)(8 * (f->offset + n)), "timestamps");
    }
    if (f->kind == K_DICT) {
        f->width = (int)PyLong_AsLong(it[3]);
        f->offset = PyLong_AsLongLong(it[6]);
        f->child_offset = PyLong_AsLongLong(it[7]);
        f->dict_len = PyLong_AsLongLong(it[8]);
        if (PyErr_Occurred()) return -1;
        if (f->width != 1 && f->width != 2 && f->width != 4 && f->width != 8) {
            PyErr_SetString(PyExc_ValueError, "a dictionary's index width is 1, 2, 4 or 8 bytes"); return -1;
        }
        if (get_buffer(it[1], &f->b[0], &f->have[0], -1, "validity") < 0) return -1;
        if (f->have[0] && f->b[0].len * 8 < f->offset + n) { PyErr_SetString(PyExc_ValueError, "validity too short"); return -1; }
        if (get_buffer(it[2], &f->b[1], &f->have[1], (Py_ssize_t)(f->width * (f->offset + n)), "indices") < 0) return -1;
        if (get_buffer(it[4], &f->b[2], &f->have[2], (Py_ssize_t)(8 * (f->child_offset + f->dict_len + 1)), "dictionary offsets") < 0) return -1;
        if (get_buffer(it[5], &f->b[3], &f->have[3], 0, "dictionary data") < 0) return -1;
        if (check_offsets(&f->b[2], f->child_offset, f->dict_len, f->b[3].len, "dictionary") < 0) return -1;
        const uint8_t *ix = f->b[1].buf;
        for (int64_t i = f->offset; i < f->offset + n; i++) { /* every valid row's index names an entry */
            if (!valid(&f->b[0], f->have[0], i)) continue;
            uint64_t k = f->width == 1 ? ix[i] : f->width == 2 ? ((const uint16_t *)ix)[i]
                       : f->width == 4 ? ((const uint32_t *)ix)[i] : ((const uint64_t *)ix)[i];
            if (k >= (uint64_t)f->dict_len) { PyErr_SetString(PyExc_ValueError, "a dictionary index is out of range"); return -1; }
        }
        return 0;
    }
    if (f->kind == K_LIST) {
        f->offset = PyLong_AsLongLong(it[6]);
        f->child_offset = PyLong_AsLongLong(it[7]);
        if (PyErr_Occurred()) return -1;
        if (get_buffer(it[1], &f->b[0], &f->have[0], -1, "list validity") < 0) return -1;
        if (get_buffer(it[2], &f->b[1], &f->have[1], (Py_ssize_t)(8 * (f->offset + n + 1)), "list offsets") < 0) return -1;
        const int64_t *lo = f->b[1].buf;
        int64_t children = n ? lo[f->offset + n] : 0;
        for (int64_t i = f->offset; i < f->offset + n; i++)
            if (lo[i] < 0 || lo[i + 1] < lo[i]) { PyErr_SetString(PyExc_ValueError, "list offsets out of order"); return -1; }
        if (get_buffer(it[3], &f->b[3], &f->have[3], -1, "child validity") < 0) return -1;
        if (get_buffer(it[4], &f->b[4], &f->have[4], (Py_ssize_t)(8 * (f->child_offset + children + 1)), "child offsets") < 0) return -1;
        if (get_buffer(it[5], &f->b[5], &f->have[5], 0, "child data") < 0) return -1;
        if ((f->have[0] && f->b[0].len * 8 < f->offset + n)
            || (f->have[3] && f->b[3].len * 8 < f->child_offset + children)) {
            PyErr_SetString(PyExc_ValueError, "validity too short"); return -1;
        }
        return check_offsets(&f->b[4], f->child_offset, children, f->b[5].len, "list strings");
    }
    f->offset = PyLong_AsLongLong(it[4]);
    if (PyErr_Occurred()) return -1;
    if (get_buffer(it[1], &f->b[0], &f->have[0], -1, "validity") < 0) return -1;
    if (get_buffer(it[2], &f->b[1], &f->have[1], (Py_ssize_t)(8 * (f->offset + n + 1)), "offsets") < 0) return -1;
    if (get_buffer(it[3], &f->b[2], &f->have[2], 0, "data") < 0) return -1;
    if (f->have[0] && f->b[0].len * 8 < f->offset + n) { PyErr_SetString(PyExc_ValueError, "validity too short"); return -1; }
    if (f->kind == K_RAW) {
        if (!PyBytes_Check(it[5])) { PyErr_SetString(PyExc_TypeError, "a raw field's default is bytes"); return -1; }
        f->dflt = PyBytes_AS_STRING(it[5]);
        f->dflt_len = PyBytes_GET_SIZE(it[5]);
    }
    return check_offsets(&f->b[1], f->offset, n, f->b[2].len, "strings");
}

static int parse_members(PyObject *seq, Member *out, int nf, int *count) {
    if (seq == Py_None) { *count = 0; return 0; }
    if (!PyTuple_Check(seq)) { PyErr_SetString(PyExc_TypeError, "members must be a tuple of (bytes, int)"); return -1; }
    PyObject *fast = seq; /* a tuple: nothing can drop the key bytes while the GIL is released */
    Py_INCREF(fast);
    Py_ssize_t n = PyTuple_GET_SIZE(fast);
    if (n > MAX_FIELDS) { Py_DECREF(fast); PyErr_SetString(PyExc_ValueError, "too many members"); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PyTuple_GET_ITEM(fast, i);
        if (!PyTuple_Check(m) || PyTuple_GET_SIZE(m) != 2 || !PyBytes_Check(PyTuple_GET_ITEM(m, 0))) {
            Py_DECREF(fast); PyErr_SetString(PyExc_TypeError, "a member is (bytes, int)"); return -1;
        }
        out[i].key = PyBytes_AS_STRING(PyTuple_GET_ITEM(m, 0));
        out[i].key_len = PyBytes_GET_SIZE(PyTuple_GET_ITEM(m, 0));
        out[i].field = (int)PyLong_AsLong(PyTuple_GET_ITEM(m, 1));
        if (out[i].field < 0 || out[i].field >= nf) {
            Py_DECREF(fast);
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a member names no field");
            return -1;
        }
    }
    *count = (int)n;
    Py_DECREF(fast); /* the caller's tuple still holds it, and with it the key bytes */
    return 0;
}

static int clamp_threads(long threads, int64_t n, int64_t min_rows) {
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (n < min_rows * threads) threads = (long)(n / min_rows) + 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    return (int)threads;
}

/* Parses (n, fields, members) into `fields`/`members`; returns the field count, or -1. */
static int parse_call(long long n, PyObject *field_seq, PyObject *member_seq, Field *fields, Member *members, int *nm) {
    if (n < 0) { PyErr_SetString(PyExc_ValueError, "n must be >= 0"); return -1; }
    if (!PyTuple_Check(field_seq)) { PyErr_SetString(PyExc_TypeError, "fields must be a tuple"); return -1; }
    int nf = (int)PyTuple_GET_SIZE(field_seq);
    if (nf > MAX_FIELDS) { PyErr_SetString(PyExc_ValueError, "too many fields"); return -1; }
    for (int f = 0; f < nf; f++)
        if (parse_field(PyTuple_GET_ITEM(field_seq, f), &fields[f], n) < 0) { release_fields(fields, f + 1); return -1; }
    if (parse_members(member_seq, members, nf, nm) < 0) { release_fields(fields, nf); return -1; }
    return nf;
}

/* leaves(n, fields, members, threads) -> bytes: SHA-256(0x00 || object) of each row, 32 bytes each. */
static PyObject *leaves(PyObject *self, PyObject *args) {
    long long n; PyObject *field_seq, *member_seq; long threads;
    if (!PyArg_ParseTuple(args, "LO!O!l", &n, &PyTuple_Type, &field_seq, &PyTuple_Type, &member_seq, &threads))
        return NULL;
    Field fields[MAX_FIELDS]; Member members[MAX_FIELDS]; int nm = 0;
    memset(fields, 0, sizeof fields);
    int nf = parse_call(n, field_seq, member_seq, fields, members, &nm);
    if (nf < 0) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(32 * n));
    if (!out) { release_fields(fields, nf); return NULL; }
    int t = clamp_threads(threads, n, 8192), failed = 0;
    Job jobs[MAX_THREADS]; pthread_t tids[MAX_THREADS]; int started[MAX_THREADS] = {0};
    uint8_t *lp = (uint8_t *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    for (int k = 0; k < t; k++) {
        jobs[k] = (Job){fields, members, nm, n * k / t, n * (k + 1) / t, lp, 0};
        if (k > 0) started[k] = pthread_create(&tids[k], NULL, run_job, &jobs[k]) == 0;
    }
    run_job(&jobs[0]);
    for (int k = 1; k < t; k++) {
        if (started[k]) pthread_join(tids[k], NULL);
        else run_job(&jobs[k]); /* no thread: done here */
    }
    Py_END_ALLOW_THREADS
    for (int k = 0; k < t; k++) failed |= jobs[k].failed;
    release_fields(fields, nf);
    if (failed) { Py_DECREF(out); return PyErr_NoMemory(); }
    return out;
}

/* lines(n, fields, members, sep) -> bytes: each row's object, `sep` between them. */
static PyObject *lines(PyObject *self, PyObject *args) {
    long long n; PyObject *field_seq, *member_seq; Py_buffer sep;
    if (!PyArg_ParseTuple(args, "LO!O!y*", &n, &PyTuple_Type, &field_seq, &PyTuple_Type, &member_seq, &sep))
        return NULL;
    Field fields[MAX_FIELDS]; Member members[MAX_FIELDS]; int nm = 0;
    memset(fields, 0, sizeof fields);
    int nf = parse_call(n, field_seq, member_seq, fields, members, &nm);
    if (nf < 0) { PyBuffer_Release(&sep); return NULL; }
    /* Each thread keeps its buffer between calls (a JSON document is written in ~8 MB
     * pieces by one thread): fresh pages cost more than the copy into the result here. */
    static _Thread_local Buf kept;
    Buf out = kept;
    out.len = 0;
    out.failed = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int64_t r = 0; r < n && !out.failed; r++) {
        if (r) put(&out, sep.buf, (size_t)sep.len);
        put_object(&out, fields, members, nm, r);
        if (r == 255) /* reserve for the rest from the first rows: one growth, not a dozen copies */
            buf_reserve(&out, out.len / 256 * (size_t)(n - r) * 9 / 8);
    }
    Py_END_ALLOW_THREADS
    release_fields(fields, nf);
    PyBuffer_Release(&sep);
    PyObject *result = out.failed ? PyErr_NoMemory() : PyBytes_FromStringAndSize(out.p ? out.p : "", (Py_ssize_t)out.len);
    if (out.cap > KEEP_MAX || out.failed) { free(out.p); out = (Buf){0}; }
    kept = out;
    return result;
}

typedef struct { const uint8_t *rows; size_t width; const uint8_t *prefix; size_t plen; int64_t start, end; uint8_t *out; } RowJob;

static void *run_rows(void *arg) {
    RowJob *j = arg;
    SHA256_CTX base, ctx;
    SHA256_Init(&base);
    SHA256_Update(&base, j->prefix, j->plen);
    for (int64_t r = j->start; r < j->end; r++) {
        ctx = base;
        SHA256_Update(&ctx, j->rows + (size_t)r * j->width, j->width);
        SHA256_Final(j->out + 32 * r, &ctx);
    }
    return NULL;
}

static PyObject *sha256_rows(PyObject *self, PyObject *args) {
    Py_buffer rows, prefix; Py_ssize_t width; long threads;
    if (!PyArg_ParseTuple(args, "y*ny*l", &rows, &width, &prefix, &threads)) return NULL;
    PyObject *out = NULL;
    if (width <= 0 || rows.len % width) {
        PyErr_Format(PyExc_ValueError, "rows of %zd bytes do not split into rows of width %zd", rows.len, width);
        goto done;
    }
    int64_t n = rows.len / width;
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(32 * n));
    if (!out) goto done;
    int t = clamp_threads(threads, n, 16384);
    RowJob jobs[MAX_THREADS]; pthread_t tids[MAX_THREADS]; int started[MAX_THREADS] = {0};
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    for (int k = 0; k < t; k++) {
        jobs[k] = (RowJob){rows.buf, (size_t)width, prefix.buf, (size_t)prefix.len, n * k / t, n * (k + 1) / t, o};
        if (k > 0) started[k] = pthread_create(&tids[k], NULL, run_rows, &jobs[k]) == 0;
    }
    run_rows(&jobs[0]);
    for (int k = 1; k < t; k++) {
        if (started[k]) pthread_join(tids[k], NULL);
        else run_rows(&jobs[k]);
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&rows);
    PyBuffer_Release(&prefix);
    return out;
}

static PyObject *sha256_values(PyObject *self, PyObject *args) {
    Py_buffer off, data, prefix; long long offset, n;
    if (!PyArg_ParseTuple(args, "y*y*LLy*", &off, &data, &offset, &n, &prefix)) return NULL;
    PyObject *out = NULL;
    if (offset < 0 || n < 0 || off.len < (Py_ssize_t)(8 * (offset + n + 1))) {
        PyErr_SetString(PyExc_ValueError, "offsets buffer too short");
        goto done;
    }
    if (check_offsets(&off, offset, n, data.len, "values") < 0) goto done;
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(32 * n));
    if (!out) goto done;
    const int64_t *o = off.buf;
    uint8_t *d = (uint8_t *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    SHA256_CTX base, ctx;
    SHA256_Init(&base);
    SHA256_Update(&base, prefix.buf, (size_t)prefix.len);
    for (long long i = 0; i < n; i++) {
        ctx = base;
        SHA256_Update(&ctx, (const uint8_t *)data.buf + o[offset + i], (size_t)(o[offset + i + 1] - o[offset + i]));
        SHA256_Final(d + 32 * i, &ctx);
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&off);
    PyBuffer_Release(&data);
    PyBuffer_Release(&prefix);
    return out;
}

/* ---------------------------------------------------------------- OTLP log records (protobuf)
 *
 * otlp_records(n, fields, members, kinds, ts, body, severity, observed) -> bytes: each row's
 * LogRecord as a ScopeLogs.log_records field (tag 0x12, length, message), concatenated; the bytes
 * the generated protobuf classes write (axon_audit/integrations/sinks/otlp_wire.py checks it).
 * Fields 1 (time_unix_nano: field `ts`, µs, × 1000; left out when 0), 2 and 3 (the row's text of
 * field `severity`, written raw), 5 (body: AnyValue of field `body`), 6 (attributes: each member is
 * (the KeyValue's key field, a field), of kind `kinds[k]`: 'S' a string, an empty AnyValue for
 * null; 'O' a string, left out for null; 'D' a double (a K_TS-shaped field), left out for null;
 * 'L' an array of strings, [] for null), 11 (observed_time_unix_nano: `observed`, 8 bytes). */

static inline size_t vlen(uint64_t v) { size_t n = 1; while (v >= 0x80) { v >>= 7; n++; } return n; }
static inline void put_varint(Buf *b, uint64_t v) {
    char t[10]; size_t n = 0;
    while (v >= 0x80) { t[n++] = (char)((v & 0x7F) | 0x80); v >>= 7; }
    t[n++] = (char)v;
    put(b, t, n);
}
static inline void put_fixed64(Buf *b, uint64_t v) {
    char t[8];
    for (int i = 0; i < 8; i++) t[i] = (char)(v >> (8 * i));
    put(b, t, 8);
}
/* A string field's value at `row` (K_STR or K_DICT): 1 and (p, len), or 0 for null. */
static int get_text(const Field *f, int64_t row, const char **p, size_t *len) {
    int64_t i = row + f->offset;
    if (!valid(&f->b[0], f->have[0], i)) return 0;
    const int64_t *off;
    if (f->kind == K_DICT) {
        const uint8_t *ix = f->b[1].buf;
        uint64_t k = f->width == 1 ? ix[i] : f->width == 2 ? ((const uint16_t *)ix)[i]
                   : f->width == 4 ? ((const uint32_t *)ix)[i] : ((const uint64_t *)ix)[i];
        off = (const int64_t *)f->b[2].buf + f->child_offset;
        *p = (const char *)f->b[3].buf + off[k]; *len = (size_t)(off[k + 1] - off[k]);
        return 1;
    }
    off = f->b[1].buf;
    *p = (const char *)f->b[2].buf + off[i]; *len = (size_t)(off[i + 1] - off[i]);
    return 1;
}
static inline size_t any_text(int ok, size_t len) { return ok ? 1 + vlen(len) + len : 0; }
static inline void put_any_text(Buf *b, int ok, const char *p, size_t len) {
    if (!ok) return;
    put(b, "\x0a", 1); put_varint(b, len); put(b, p, len);
}
/* The AnyValue size of attribute `kind` of field f at row; -1 when the attribute is left out. */
static int64_t attr_value_size(const Field *f, char kind, int64_t row) {
    int64_t i = row + f->offset;
    const char *p; size_t len;
    if (kind == 'D') return valid(&f->b[0], f->have[0], i) ? 9 : -1;
    if (kind == 'L') {
        size_t arr = 0;
        if (valid(&f->b[0], f->have[0], i)) {
            const int64_t *lo = f->b[1].buf, *co = f->b[4].buf;
            for (int64_t j = lo[i]; j < lo[i + 1]; j++) {
                int64_t k = j + f->child_offset;
                size_t a = valid(&f->b[3], f->have[3], k) ? any_text(1, (size_t)(co[k + 1] - co[k])) : 0;
                arr += 1 + vlen(a) + a;
            }
        }
        return (int64_t)(1 + vlen(arr) + arr);
    }
    int ok = get_text(f, row, &p, &len);
    if (!ok && kind == 'O') return -1;
    return (int64_t)any_text(ok, len);
}
static void put_attr_value(Buf *b, const Field *f, char kind, int64_t row) {
    int64_t i = row + f->offset;
    const char *p; size_t len;
    if (kind == 'D') { uint64_t v; memcpy(&v, (const char *)f->b[1].buf + 8 * i, 8); put(b, "\x21", 1); put_fixed64(b, v); return; }
    if (kind == 'L') {
        size_t inner = 0; /* the ArrayValue's size */
        const int64_t *lo = f->b[1].buf, *co = f->b[4].buf;
        int ok = valid(&f->b[0], f->have[0], i);
        if (ok)
            for (int64_t j = lo[i]; j < lo[i + 1]; j++) {
                int64_t k = j + f->child_offset;
                size_t a = valid(&f->b[3], f->have[3], k) ? any_text(1, (size_t)(co[k + 1] - co[k])) : 0;
                inner += 1 + vlen(a) + a;
            }
        put(b, "\x2a", 1); put_varint(b, inner);
        if (ok)
            for (int64_t j = lo[i]; j < lo[i + 1]; j++) {
                int64_t k = j + f->child_offset;
                int cv = valid(&f->b[3], f->have[3], k);
                size_t l = cv ? (size_t)(co[k + 1] - co[k]) : 0;
                put(b, "\x0a", 1); put_varint(b, any_text(cv, l));
                put_any_text(b, cv, (const char *)f->b[5].buf + (cv ? co[k] : 0), l);
            }
        return;
    }
    int ok = get_text(f, row, &p, &len);
    put_any_text(b, ok, p, len);
}

static PyObject *otlp_records(PyObject *self, PyObject *args) {
    long long n; PyObject *field_seq, *member_seq; Py_buffer kinds, observed; int ts, body, sev;
    if (!PyArg_ParseTuple(args, "LO!O!y*iiiy*", &n, &PyTuple_Type, &field_seq, &PyTuple_Type, &member_seq, &kinds,
                          &ts, &body, &sev, &observed))
        return NULL;
    Field fields[MAX_FIELDS]; Member members[MAX_FIELDS]; int nm = 0;
    memset(fields, 0, sizeof fields);
    PyObject *result = NULL;
    int nf = parse_call(n, field_seq, member_seq, fields, members, &nm);
    if (nf < 0) { PyBuffer_Release(&kinds); PyBuffer_Release(&observed); return NULL; }
    const char *kind = kinds.buf;
    int bad = kinds.len != nm || observed.len != 8 || ts < 0 || ts >= nf || body < 0 || body >= nf || sev < 0 || sev >= nf
              || fields[ts].kind != K_TS || (fields[body].kind != K_STR && fields[body].kind != K_DICT)
              || fields[sev].kind != K_STR;
    for (int k = 0; k < nm && !bad; k++) {
        int fk = fields[members[k].field].kind;
        bad = kind[k] == 'D' ? fk != K_TS : kind[k] == 'L' ? fk != K_LIST
            : (kind[k] == 'S' || kind[k] == 'O') ? (fk != K_STR && fk != K_DICT) : 1;
    }
    if (bad) { PyErr_SetString(PyExc_ValueError, "otlp_records: kinds, fields or observed do not fit"); goto done; }
    Buf out = {0};
    int negative = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int64_t r = 0; r < n && !out.failed && !negative; r++) {
        const Field *tf = &fields[ts];
        int64_t us = valid(&tf->b[0], tf->have[0], r + tf->offset) ? ((const int64_t *)tf->b[1].buf)[r + tf->offset] : 0;
        if (us < 0) { negative = 1; break; }
        uint64_t ns = (uint64_t)us * 1000u;
        const char *sp, *bp; size_t sl, bl;
        get_text(&fields[sev], r, &sp, &sl);
        int bok = get_text(&fields[body], r, &bp, &bl);
        size_t bany = any_text(bok, bl);
        size_t rec = (ns ? 9 : 0) + sl + 1 + vlen(bany) + bany + 9;
        for (int k = 0; k < nm; k++) {
            int64_t a = attr_value_size(&fields[members[k].field], kind[k], r);
            if (a < 0) continue;
            size_t kv = (size_t)members[k].key_len + 1 + vlen((uint64_t)a) + (size_t)a;
            rec += 1 + vlen(kv) + kv;
        }
        put(&out, "\x12", 1); put_varint(&out, rec);
        if (ns) { put(&out, "\x09", 1); put_fixed64(&out, ns); }
        put(&out, sp, sl);
        put(&out, "\x2a", 1); put_varint(&out, bany); put_any_text(&out, bok, bp, bl);
        for (int k = 0; k < nm; k++) {
            const Field *f = &fields[members[k].field];
            int64_t a = attr_value_size(f, kind[k], r);
            if (a < 0) continue;
            size_t kv = (size_t)members[k].key_len + 1 + vlen((uint64_t)a) + (size_t)a;
            put(&out, "\x32", 1); put_varint(&out, kv);
            put(&out, members[k].key, (size_t)members[k].key_len);
            put(&out, "\x12", 1); put_varint(&out, (uint64_t)a);
            put_attr_value(&out, f, kind[k], r);
        }
        put(&out, "\x59", 1); put(&out, observed.buf, 8);
    }
    Py_END_ALLOW_THREADS
    if (negative) PyErr_SetString(PyExc_ValueError, "otlp_records: a timestamp before 1970 has no time_unix_nano");
    else if (out.failed) PyErr_NoMemory();
    else result = PyBytes_FromStringAndSize(out.p ? out.p : "", (Py_ssize_t)out.len);
    free(out.p);
done:
    release_fields(fields, nf);
    PyBuffer_Release(&kinds);
    PyBuffer_Release(&observed);
    return result;
}

static PyMethodDef methods[] = {
    {"otlp_records", otlp_records, METH_VARARGS,
     "otlp_records(n, fields, members, kinds, ts, body, severity, observed) -> LogRecords (protobuf)"},
    {"leaves", leaves, METH_VARARGS, "leaves(n, fields, members, threads) -> 32-byte leaf hashes"},
    {"lines", lines, METH_VARARGS, "lines(n, fields, members, sep) -> the objects, sep between them"},
    {"sha256_rows", sha256_rows, METH_VARARGS, "sha256_rows(rows, width, prefix, threads) -> digests"},
    {"sha256_values", sha256_values, METH_VARARGS, "sha256_values(offsets, data, offset, n, prefix) -> digests"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "leafhash",
    "The Merkle log's hot loops in C (see axon_audit/integrity/native.py).", -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_leafhash(void) { return PyModule_Create(&module); }
