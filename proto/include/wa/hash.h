/*
 * hash.h - the one non-cryptographic hash of wa-server: 64-bit FNV-1a.
 *
 * For hash tables, lock stripes, fingerprints and rendezvous placement:
 * fast on short keys (user ids, request ids), stable across processes and
 * builds (store-svc's placement and fakewa's seeded data depend on the
 * values). Not for anything an attacker must not be able to collide:
 * tables keyed by user input bound their chains instead.
 */
#ifndef WA_HASH_H
#define WA_HASH_H

#include <stddef.h>
#include <stdint.h>

/* The FNV-1a offset basis: the h to start from. */
#define WA_FNV1A_INIT UINT64_C(0xcbf29ce484222325)

/* FNV-1a over len bytes of buf, continuing from h (WA_FNV1A_INIT to start):
 * wa_fnv1a(wa_fnv1a(h, a, n), b, m) hashes a then b. */
uint64_t wa_fnv1a(uint64_t h, const void *buf, size_t len);

/* FNV-1a of the string s, without its NUL, from WA_FNV1A_INIT. */
uint64_t wa_fnv1a_str(const char *s);

#endif
