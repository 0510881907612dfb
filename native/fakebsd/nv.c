/*
 * nvlist implementation shared by libfakenv.so and the fake kernel.
 *
 * Semantics follow FreeBSD libnv where carpd can observe them: errors latch on the
 * list (nvlist_error) and make nvlist_pack return NULL, adding a duplicate key
 * latches EEXIST, nvlist_get_* / nvlist_free_* on a missing key abort the process.
 *
 * Packed format (not FreeBSD's; only this fake reads it), all little-endian:
 *   header: "FKNV" | u8 version (1) | u8 flags | u16 0 | u32 pair count
 *   pair:   u8 type | u8 0 | u16 name length incl. NUL | u32 data length | name | data
 *   data:   NUMBER u64, STRING bytes incl. NUL, BINARY raw bytes,
 *           NVLIST a complete nested packed nvlist, BOOL one byte 0/1,
 *           NUMBER_ARRAY n x u64 (n may be 0).
 */
#define _GNU_SOURCE
#include "nv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef FAKENV_KERNEL
/* The fake libc exports "free"; reach the real allocator without going through it. */
void fk_real_free(void *p) __attribute__((visibility("hidden")));
#define NV_FREE(p) fk_real_free(p)
#else
#define NV_FREE(p) free(p)
#endif

#define NV_MAGIC "FKNV"
#define NV_FORMAT_VERSION 1
#define NV_HDR_LEN 12
#define NV_PAIR_HDR_LEN 8
#define NV_MAX_DEPTH 16

struct nvpair {
	int type;
	char *name;
	uint64_t num;
	char *str;
	nvlist_t *nvl;
	void *bin;
	size_t binsize;
};

struct nvlist {
	int error;
	int flags;
	size_t n;
	size_t cap;
	struct nvpair *pairs;
	int has_parent;
};

static const char *nv_type_name(int type)
{
	switch (type) {
	case NV_TYPE_NUMBER: return "number";
	case NV_TYPE_STRING: return "string";
	case NV_TYPE_NVLIST: return "nvlist";
	case NV_TYPE_BINARY: return "binary";
	case NV_TYPE_BOOL: return "bool";
	case NV_TYPE_NUMBER_ARRAY: return "number array";
	default: return "unknown";
	}
}

static void nv_report_missing(const char *fn, int type, const char *name)
{
	fprintf(stderr, "%s: Element '%s' of type %s doesn't exist.\n", fn, name ? name : "(null)",
	        nv_type_name(type));
	fflush(stderr);
	abort();
}

static int nv_name_eq(const nvlist_t *nvl, const char *a, const char *b)
{
	return (nvl->flags & NV_FLAG_IGNORE_CASE) ? strcasecmp(a, b) == 0 : strcmp(a, b) == 0;
}

/* type 0 = any type. */
static struct nvpair *nv_find(const nvlist_t *nvl, int type, const char *name)
{
	if (nvl == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < nvl->n; i++) {
		struct nvpair *p = &nvl->pairs[i];
		if ((type == 0 || p->type == type) && nv_name_eq(nvl, p->name, name))
			return p;
	}
	return NULL;
}

static void nv_pair_release(struct nvpair *p)
{
	NV_FREE(p->name);
	if (p->type == NV_TYPE_STRING)
		NV_FREE(p->str);
	else if (p->type == NV_TYPE_BINARY || p->type == NV_TYPE_NUMBER_ARRAY)
		NV_FREE(p->bin);
	else if (p->type == NV_TYPE_NVLIST)
		nvlist_destroy(p->nvl);
}

nvlist_t *nvlist_create(int flags)
{
	nvlist_t *nvl = calloc(1, sizeof(*nvl));
	if (nvl == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	nvl->flags = flags & (NV_FLAG_IGNORE_CASE | NV_FLAG_NO_UNIQUE);
	return nvl;
}

void nvlist_destroy(nvlist_t *nvl)
{
	int saved = errno;
	if (nvl == NULL)
		return;
	for (size_t i = 0; i < nvl->n; i++)
		nv_pair_release(&nvl->pairs[i]);
	NV_FREE(nvl->pairs);
	NV_FREE(nvl);
	errno = saved;
}

int nvlist_error(const nvlist_t *nvl)
{
	return nvl == NULL ? ENOMEM : nvl->error;
}

bool nvlist_empty(const nvlist_t *nvl)
{
	return nvl == NULL || nvl->n == 0;
}

bool nvlist_exists(const nvlist_t *nvl, const char *name)
{
	return nv_find(nvl, 0, name) != NULL;
}

static void nv_latch(nvlist_t *nvl, int err)
{
	if (nvl != NULL && nvl->error == 0)
		nvl->error = err;
	errno = err;
}

/* Takes ownership of *p's payload; releases it on failure. */
static void nv_insert(nvlist_t *nvl, const char *name, struct nvpair *p)
{
	if (nvl == NULL) {
		p->name = NULL;
		nv_pair_release(p);
		errno = ENOMEM;
		return;
	}
	if (nvl->error != 0) {
		p->name = NULL;
		nv_pair_release(p);
		errno = nvl->error;
		return;
	}
	if (name == NULL || strlen(name) >= NV_NAME_MAX) {
		p->name = NULL;
		nv_pair_release(p);
		nv_latch(nvl, EINVAL);
		return;
	}
	if (!(nvl->flags & NV_FLAG_NO_UNIQUE) && nv_find(nvl, 0, name) != NULL) {
		p->name = NULL;
		nv_pair_release(p);
		nv_latch(nvl, EEXIST);
		return;
	}
	if (nvl->n == nvl->cap) {
		size_t ncap = nvl->cap ? nvl->cap * 2 : 8;
		struct nvpair *np = realloc(nvl->pairs, ncap * sizeof(*np));
		if (np == NULL) {
			p->name = NULL;
			nv_pair_release(p);
			nv_latch(nvl, ENOMEM);
			return;
		}
		nvl->pairs = np;
		nvl->cap = ncap;
	}
	p->name = strdup(name);
	if (p->name == NULL) {
		nv_pair_release(p);
		nv_latch(nvl, ENOMEM);
		return;
	}
	nvl->pairs[nvl->n++] = *p;
}

void nvlist_add_number(nvlist_t *nvl, const char *name, uint64_t value)
{
	struct nvpair p = {.type = NV_TYPE_NUMBER, .num = value};
	nv_insert(nvl, name, &p);
}

void nvlist_add_string(nvlist_t *nvl, const char *name, const char *value)
{
	struct nvpair p = {.type = NV_TYPE_STRING};
	if (value == NULL) {
		if (nvl != NULL && nvl->error == 0)
			nv_latch(nvl, EINVAL);
		return;
	}
	p.str = strdup(value);
	if (p.str == NULL) {
		nv_latch(nvl, ENOMEM);
		return;
	}
	nv_insert(nvl, name, &p);
}

void nvlist_add_binary(nvlist_t *nvl, const char *name, const void *value, size_t size)
{
	struct nvpair p = {.type = NV_TYPE_BINARY, .binsize = size};
	if (value == NULL || size == 0) {
		if (nvl != NULL && nvl->error == 0)
			nv_latch(nvl, EINVAL);
		return;
	}
	p.bin = malloc(size);
	if (p.bin == NULL) {
		nv_latch(nvl, ENOMEM);
		return;
	}
	memcpy(p.bin, value, size);
	nv_insert(nvl, name, &p);
}

void nvlist_add_bool(nvlist_t *nvl, const char *name, bool value)
{
	struct nvpair p = {.type = NV_TYPE_BOOL, .num = value ? 1 : 0};
	nv_insert(nvl, name, &p);
}

void nvlist_add_number_array(nvlist_t *nvl, const char *name, const uint64_t *value, size_t nitems)
{
	struct nvpair p = {.type = NV_TYPE_NUMBER_ARRAY, .binsize = nitems * sizeof(uint64_t)};
	if (value == NULL && nitems != 0) {
		if (nvl != NULL && nvl->error == 0)
			nv_latch(nvl, EINVAL);
		return;
	}
	if (nitems != 0) {
		p.bin = malloc(p.binsize);
		if (p.bin == NULL) {
			nv_latch(nvl, ENOMEM);
			return;
		}
		memcpy(p.bin, value, p.binsize);
	}
	nv_insert(nvl, name, &p);
}

static nvlist_t *nv_clone(const nvlist_t *src);

void nvlist_add_nvlist(nvlist_t *nvl, const char *name, const nvlist_t *value)
{
	struct nvpair p = {.type = NV_TYPE_NVLIST};
	if (nvl != NULL && nvl->error != 0) {
		errno = nvl->error;
		return;
	}
	if (value == NULL) {
		nv_latch(nvl, EINVAL);
		return;
	}
	if (value->error != 0) {
		nv_latch(nvl, value->error);
		return;
	}
	p.nvl = nv_clone(value);
	if (p.nvl == NULL) {
		nv_latch(nvl, ENOMEM);
		return;
	}
	p.nvl->has_parent = 1;
	nv_insert(nvl, name, &p);
}

void nvlist_move_nvlist(nvlist_t *nvl, const char *name, nvlist_t *value)
{
	struct nvpair p = {.type = NV_TYPE_NVLIST};
	if (value == NULL || value->has_parent) {
		if (value != NULL && !value->has_parent)
			nvlist_destroy(value);
		nv_latch(nvl, EINVAL);
		return;
	}
	if (value->error != 0) {
		int err = value->error;
		nvlist_destroy(value);
		nv_latch(nvl, err);
		return;
	}
	value->has_parent = 1;
	p.nvl = value;
	nv_insert(nvl, name, &p);
}

static nvlist_t *nv_clone(const nvlist_t *src)
{
	nvlist_t *dst = nvlist_create(src->flags);
	if (dst == NULL)
		return NULL;
	for (size_t i = 0; i < src->n && dst->error == 0; i++) {
		const struct nvpair *p = &src->pairs[i];
		switch (p->type) {
		case NV_TYPE_NUMBER: nvlist_add_number(dst, p->name, p->num); break;
		case NV_TYPE_STRING: nvlist_add_string(dst, p->name, p->str); break;
		case NV_TYPE_BINARY: nvlist_add_binary(dst, p->name, p->bin, p->binsize); break;
		case NV_TYPE_NVLIST: nvlist_add_nvlist(dst, p->name, p->nvl); break;
		case NV_TYPE_BOOL: nvlist_add_bool(dst, p->name, p->num != 0); break;
		case NV_TYPE_NUMBER_ARRAY: nvlist_add_number_array(dst, p->name, p->bin, p->binsize / 8); break;
		default: break;
		}
	}
	if (dst->error != 0) {
		nvlist_destroy(dst);
		return NULL;
	}
	return dst;
}

bool nvlist_exists_string(const nvlist_t *nvl, const char *name)
{
	return nv_find(nvl, NV_TYPE_STRING, name) != NULL;
}

bool nvlist_exists_number(const nvlist_t *nvl, const char *name)
{
	return nv_find(nvl, NV_TYPE_NUMBER, name) != NULL;
}

bool nvlist_exists_nvlist(const nvlist_t *nvl, const char *name)
{
	return nv_find(nvl, NV_TYPE_NVLIST, name) != NULL;
}

bool nvlist_exists_binary(const nvlist_t *nvl, const char *name)
{
	return nv_find(nvl, NV_TYPE_BINARY, name) != NULL;
}

bool nvlist_exists_bool(const nvlist_t *nvl, const char *name)
{
	return nv_find(nvl, NV_TYPE_BOOL, name) != NULL;
}

bool nvlist_exists_number_array(const nvlist_t *nvl, const char *name)
{
	return nv_find(nvl, NV_TYPE_NUMBER_ARRAY, name) != NULL;
}

static void nv_free_type(nvlist_t *nvl, int type, const char *name, const char *fn)
{
	struct nvpair *p = nv_find(nvl, type, name);
	if (p == NULL)
		nv_report_missing(fn, type, name);
	size_t idx = (size_t)(p - nvl->pairs);
	nv_pair_release(p);
	memmove(&nvl->pairs[idx], &nvl->pairs[idx + 1], (nvl->n - idx - 1) * sizeof(*p));
	nvl->n--;
}

void nvlist_free_string(nvlist_t *nvl, const char *name)
{
	nv_free_type(nvl, NV_TYPE_STRING, name, "nvlist_free_string");
}

void nvlist_free_number(nvlist_t *nvl, const char *name)
{
	nv_free_type(nvl, NV_TYPE_NUMBER, name, "nvlist_free_number");
}

void nvlist_free_nvlist(nvlist_t *nvl, const char *name)
{
	nv_free_type(nvl, NV_TYPE_NVLIST, name, "nvlist_free_nvlist");
}

void nvlist_free_binary(nvlist_t *nvl, const char *name)
{
	nv_free_type(nvl, NV_TYPE_BINARY, name, "nvlist_free_binary");
}

const char *nvlist_get_string(const nvlist_t *nvl, const char *name)
{
	struct nvpair *p = nv_find(nvl, NV_TYPE_STRING, name);
	if (p == NULL)
		nv_report_missing("nvlist_get_string", NV_TYPE_STRING, name);
	return p->str;
}

uint64_t nvlist_get_number(const nvlist_t *nvl, const char *name)
{
	struct nvpair *p = nv_find(nvl, NV_TYPE_NUMBER, name);
	if (p == NULL)
		nv_report_missing("nvlist_get_number", NV_TYPE_NUMBER, name);
	return p->num;
}

const nvlist_t *nvlist_get_nvlist(const nvlist_t *nvl, const char *name)
{
	struct nvpair *p = nv_find(nvl, NV_TYPE_NVLIST, name);
	if (p == NULL)
		nv_report_missing("nvlist_get_nvlist", NV_TYPE_NVLIST, name);
	return p->nvl;
}

const void *nvlist_get_binary(const nvlist_t *nvl, const char *name, size_t *sizep)
{
	struct nvpair *p = nv_find(nvl, NV_TYPE_BINARY, name);
	if (p == NULL)
		nv_report_missing("nvlist_get_binary", NV_TYPE_BINARY, name);
	if (sizep != NULL)
		*sizep = p->binsize;
	return p->bin;
}

bool nvlist_get_bool(const nvlist_t *nvl, const char *name)
{
	struct nvpair *p = nv_find(nvl, NV_TYPE_BOOL, name);
	if (p == NULL)
		nv_report_missing("nvlist_get_bool", NV_TYPE_BOOL, name);
	return p->num != 0;
}

const uint64_t *nvlist_get_number_array(const nvlist_t *nvl, const char *name, size_t *nitemsp)
{
	struct nvpair *p = nv_find(nvl, NV_TYPE_NUMBER_ARRAY, name);
	if (p == NULL)
		nv_report_missing("nvlist_get_number_array", NV_TYPE_NUMBER_ARRAY, name);
	if (nitemsp != NULL)
		*nitemsp = p->binsize / sizeof(uint64_t);
	return p->bin;
}

/* ---- pack / unpack ---- */

static void put_u16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get_u16(const uint8_t *b)
{
	return (uint16_t)(b[0] | (b[1] << 8));
}

static uint32_t get_u32(const uint8_t *b)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

static uint64_t get_u64(const uint8_t *b)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | b[i];
	return v;
}

static size_t nv_data_len(const struct nvpair *p)
{
	switch (p->type) {
	case NV_TYPE_NUMBER: return 8;
	case NV_TYPE_STRING: return strlen(p->str) + 1;
	case NV_TYPE_BINARY: return p->binsize;
	case NV_TYPE_BOOL: return 1;
	case NV_TYPE_NUMBER_ARRAY: return p->binsize;
	default: return 0;
	}
}

static size_t nv_packed_size(const nvlist_t *nvl)
{
	size_t total = NV_HDR_LEN;
	for (size_t i = 0; i < nvl->n; i++) {
		const struct nvpair *p = &nvl->pairs[i];
		total += NV_PAIR_HDR_LEN + strlen(p->name) + 1;
		total += p->type == NV_TYPE_NVLIST ? nv_packed_size(p->nvl) : nv_data_len(p);
	}
	return total;
}

static uint8_t *nv_pack_into(const nvlist_t *nvl, uint8_t *out)
{
	memcpy(out, NV_MAGIC, 4);
	out[4] = NV_FORMAT_VERSION;
	out[5] = (uint8_t)nvl->flags;
	put_u16(out + 6, 0);
	put_u32(out + 8, (uint32_t)nvl->n);
	out += NV_HDR_LEN;
	for (size_t i = 0; i < nvl->n; i++) {
		const struct nvpair *p = &nvl->pairs[i];
		size_t nlen = strlen(p->name) + 1;
		size_t dlen = p->type == NV_TYPE_NVLIST ? nv_packed_size(p->nvl) : nv_data_len(p);
		out[0] = (uint8_t)p->type;
		out[1] = 0;
		put_u16(out + 2, (uint16_t)nlen);
		put_u32(out + 4, (uint32_t)dlen);
		out += NV_PAIR_HDR_LEN;
		memcpy(out, p->name, nlen);
		out += nlen;
		switch (p->type) {
		case NV_TYPE_NUMBER: put_u64(out, p->num); out += 8; break;
		case NV_TYPE_STRING: memcpy(out, p->str, dlen); out += dlen; break;
		case NV_TYPE_BINARY: memcpy(out, p->bin, dlen); out += dlen; break;
		case NV_TYPE_BOOL: out[0] = (uint8_t)(p->num != 0); out += 1; break;
		case NV_TYPE_NUMBER_ARRAY:
			for (size_t k = 0; k < dlen / 8; k++)
				put_u64(out + 8 * k, ((const uint64_t *)p->bin)[k]);
			out += dlen;
			break;
		case NV_TYPE_NVLIST: out = nv_pack_into(p->nvl, out); break;
		default: break;
		}
	}
	return out;
}

void *nvlist_pack(const nvlist_t *nvl, size_t *sizep)
{
	if (nvl == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	if (nvl->error != 0) {
		errno = nvl->error;
		return NULL;
	}
	size_t size = nv_packed_size(nvl);
	uint8_t *buf = malloc(size);
	if (buf == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	nv_pack_into(nvl, buf);
	if (sizep != NULL)
		*sizep = size;
	return buf;
}

/* Returns bytes consumed, or 0 on malformed input. */
static size_t nv_unpack_from(const uint8_t *buf, size_t size, int flags, int depth, nvlist_t **out)
{
	if (depth > NV_MAX_DEPTH || size < NV_HDR_LEN || memcmp(buf, NV_MAGIC, 4) != 0 ||
	    buf[4] != NV_FORMAT_VERSION)
		return 0;
	nvlist_t *nvl = nvlist_create((buf[5] | flags) & (NV_FLAG_IGNORE_CASE | NV_FLAG_NO_UNIQUE));
	if (nvl == NULL)
		return 0;
	uint32_t count = get_u32(buf + 8);
	size_t off = NV_HDR_LEN;
	for (uint32_t i = 0; i < count; i++) {
		if (size - off < NV_PAIR_HDR_LEN)
			goto bad;
		int type = buf[off];
		size_t nlen = get_u16(buf + off + 2);
		size_t dlen = get_u32(buf + off + 4);
		off += NV_PAIR_HDR_LEN;
		if (nlen == 0 || size - off < nlen || buf[off + nlen - 1] != '\0' ||
		    memchr(buf + off, '\0', nlen) != buf + off + nlen - 1)
			goto bad;
		const char *name = (const char *)buf + off;
		off += nlen;
		if (size - off < dlen)
			goto bad;
		const uint8_t *data = buf + off;
		switch (type) {
		case NV_TYPE_NUMBER:
			if (dlen != 8)
				goto bad;
			nvlist_add_number(nvl, name, get_u64(data));
			break;
		case NV_TYPE_STRING:
			if (dlen == 0 || memchr(data, '\0', dlen) != data + dlen - 1)
				goto bad;
			nvlist_add_string(nvl, name, (const char *)data);
			break;
		case NV_TYPE_BINARY:
			if (dlen == 0)
				goto bad;
			nvlist_add_binary(nvl, name, data, dlen);
			break;
		case NV_TYPE_BOOL:
			if (dlen != 1 || data[0] > 1)
				goto bad;
			nvlist_add_bool(nvl, name, data[0] != 0);
			break;
		case NV_TYPE_NUMBER_ARRAY: {
			if (dlen % 8 != 0)
				goto bad;
			size_t n = dlen / 8;
			uint64_t *arr = n ? malloc(dlen) : NULL;
			if (n && arr == NULL)
				goto bad;
			for (size_t k = 0; k < n; k++)
				arr[k] = get_u64(data + 8 * k);
			nvlist_add_number_array(nvl, name, arr, n);
			NV_FREE(arr);
			break;
		}
		case NV_TYPE_NVLIST: {
			nvlist_t *child = NULL;
			size_t used = nv_unpack_from(data, dlen, flags, depth + 1, &child);
			if (used == 0 || used != dlen)
				goto bad;
			nvlist_move_nvlist(nvl, name, child);
			break;
		}
		default:
			goto bad;
		}
		if (nvl->error != 0)
			goto bad;
		off += dlen;
	}
	*out = nvl;
	return off;
bad:
	nvlist_destroy(nvl);
	return 0;
}

nvlist_t *nvlist_unpack(const void *buf, size_t size, int flags)
{
	nvlist_t *nvl = NULL;
	if (buf == NULL || (flags & ~(NV_FLAG_IGNORE_CASE | NV_FLAG_NO_UNIQUE)) != 0) {
		errno = EINVAL;
		return NULL;
	}
	size_t used = nv_unpack_from(buf, size, flags, 0, &nvl);
	if (used == 0 || used != size) {
		nvlist_destroy(nvl);
		errno = EINVAL;
		return NULL;
	}
	return nvl;
}

#ifndef FAKENV_KERNEL
/* libnv.so.1 (FreeBSD 14+) exports every function with a FreeBSD_ prefix. */
#define NV_ALIAS(fn) \
	extern __typeof(fn) FreeBSD_##fn __attribute__((alias(#fn), visibility("default")))
NV_ALIAS(nvlist_create);
NV_ALIAS(nvlist_destroy);
NV_ALIAS(nvlist_error);
NV_ALIAS(nvlist_empty);
NV_ALIAS(nvlist_exists);
NV_ALIAS(nvlist_add_string);
NV_ALIAS(nvlist_add_number);
NV_ALIAS(nvlist_add_binary);
NV_ALIAS(nvlist_add_nvlist);
NV_ALIAS(nvlist_move_nvlist);
NV_ALIAS(nvlist_exists_string);
NV_ALIAS(nvlist_exists_number);
NV_ALIAS(nvlist_exists_nvlist);
NV_ALIAS(nvlist_exists_binary);
NV_ALIAS(nvlist_free_string);
NV_ALIAS(nvlist_free_number);
NV_ALIAS(nvlist_free_nvlist);
NV_ALIAS(nvlist_free_binary);
NV_ALIAS(nvlist_get_string);
NV_ALIAS(nvlist_get_number);
NV_ALIAS(nvlist_get_nvlist);
NV_ALIAS(nvlist_get_binary);
NV_ALIAS(nvlist_pack);
NV_ALIAS(nvlist_unpack);
NV_ALIAS(nvlist_add_bool);
NV_ALIAS(nvlist_add_number_array);
NV_ALIAS(nvlist_exists_bool);
NV_ALIAS(nvlist_exists_number_array);
NV_ALIAS(nvlist_get_bool);
NV_ALIAS(nvlist_get_number_array);
#endif
