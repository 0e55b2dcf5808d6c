/*
 * envelope_int.h - what envelope.c shares with the batching client
 * (batch.c); not part of proto's public interface.
 */
#ifndef WA_ENVELOPE_INT_H
#define WA_ENVELOPE_INT_H

#include <stdbool.h>

#include "wa/envelope.h"
#include "wa/json.h"

/*
 * As wa_reply_decode (raw false) or wa_reply_decode_raw (raw true), of a
 * reply already checked as part of a larger text: a member of a bus.batch
 * reply, whose bytes were checked once, whole.
 */
wa_err_t wa__reply_decode_checked(wa_json_span_t obj, bool raw,
                                  wa_reply_t *rep);

#endif /* WA_ENVELOPE_INT_H */
