/*
 * bus_int.h - what bus.c shares with the batching client (batch.c); not part
 * of proto's public interface.
 */
#ifndef WA_BUS_INT_H
#define WA_BUS_INT_H

#include <stdbool.h>

#include "wa/bus.h"

/*
 * One request-reply of an already encoded request (buf[0..len), not
 * consumed) on this thread's cached context for req; results as
 * wa_bus_call(), with the reply's data left as text (rep->raw) when raw.
 * timeout_ms > 0.
 */
wa_err_t wa__bus_call_encoded(nng_socket req, const char *buf, size_t len,
                              int timeout_ms, bool raw, wa_reply_t *rep);

/*
 * The result of a call from its decoded reply: decode_err is the decoder's
 * verdict on it. An undecodable reply is WA_EPROTO (WA_ENOMEM kept); an
 * error reply is its code. rep is cleared unless the result is WA_OK or a
 * remote error.
 */
wa_err_t wa__bus_result(wa_err_t decode_err, wa_reply_t *rep);

#endif /* WA_BUS_INT_H */
