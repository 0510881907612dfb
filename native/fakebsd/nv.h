/*
 * Minimal libnv work-alike. Compiled twice: into libfakenv.so (exported, plain and
 * FreeBSD_-prefixed names) and into libfakefreebsd.so (hidden, FAKENV_KERNEL) so the
 * fake kernel unpacks exactly what the fake libnv packs.
 */
#ifndef FAKE_NV_H
#define FAKE_NV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef FAKENV_KERNEL
#define NV_API __attribute__((visibility("hidden")))
#else
#define NV_API __attribute__((visibility("default")))
#endif

#define NV_TYPE_NULL 1
#define NV_TYPE_BOOL 2
#define NV_TYPE_NUMBER 3
#define NV_TYPE_STRING 4
#define NV_TYPE_NVLIST 5
#define NV_TYPE_BINARY 7
#define NV_TYPE_NUMBER_ARRAY 9

#define NV_FLAG_IGNORE_CASE 0x01
#define NV_FLAG_NO_UNIQUE 0x02

#define NV_NAME_MAX 2048

typedef struct nvlist nvlist_t;

NV_API nvlist_t *nvlist_create(int flags);
NV_API void nvlist_destroy(nvlist_t *nvl);
NV_API int nvlist_error(const nvlist_t *nvl);
NV_API bool nvlist_empty(const nvlist_t *nvl);
NV_API bool nvlist_exists(const nvlist_t *nvl, const char *name);

NV_API void nvlist_add_string(nvlist_t *nvl, const char *name, const char *value);
NV_API void nvlist_add_number(nvlist_t *nvl, const char *name, uint64_t value);
NV_API void nvlist_add_binary(nvlist_t *nvl, const char *name, const void *value, size_t size);
NV_API void nvlist_add_nvlist(nvlist_t *nvl, const char *name, const nvlist_t *value);
NV_API void nvlist_move_nvlist(nvlist_t *nvl, const char *name, nvlist_t *value);

NV_API bool nvlist_exists_string(const nvlist_t *nvl, const char *name);
NV_API bool nvlist_exists_number(const nvlist_t *nvl, const char *name);
NV_API bool nvlist_exists_nvlist(const nvlist_t *nvl, const char *name);
NV_API bool nvlist_exists_binary(const nvlist_t *nvl, const char *name);

/* pf's DIOCGETSTATUSNV reply carries a bool and number arrays. */
NV_API void nvlist_add_bool(nvlist_t *nvl, const char *name, bool value);
NV_API void nvlist_add_number_array(nvlist_t *nvl, const char *name, const uint64_t *value, size_t nitems);
NV_API bool nvlist_exists_bool(const nvlist_t *nvl, const char *name);
NV_API bool nvlist_exists_number_array(const nvlist_t *nvl, const char *name);
NV_API bool nvlist_get_bool(const nvlist_t *nvl, const char *name);
NV_API const uint64_t *nvlist_get_number_array(const nvlist_t *nvl, const char *name, size_t *nitemsp);

NV_API void nvlist_free_string(nvlist_t *nvl, const char *name);
NV_API void nvlist_free_number(nvlist_t *nvl, const char *name);
NV_API void nvlist_free_nvlist(nvlist_t *nvl, const char *name);
NV_API void nvlist_free_binary(nvlist_t *nvl, const char *name);

NV_API const char *nvlist_get_string(const nvlist_t *nvl, const char *name);
NV_API uint64_t nvlist_get_number(const nvlist_t *nvl, const char *name);
NV_API const nvlist_t *nvlist_get_nvlist(const nvlist_t *nvl, const char *name);
NV_API const void *nvlist_get_binary(const nvlist_t *nvl, const char *name, size_t *sizep);

NV_API void *nvlist_pack(const nvlist_t *nvl, size_t *sizep);
NV_API nvlist_t *nvlist_unpack(const void *buf, size_t size, int flags);

#endif
