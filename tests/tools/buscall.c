/*
 * buscall - send one bus request and print the reply, for tests and for
 * operators poking at a running stack:
 *
 *   buscall <url> <op> [user] [args-json] [timeout-ms]
 *
 * Prints the reply's data (ok) or "<code>: <message>" (error) on stdout.
 * Exit status: 0 ok, 1 error reply, 3 transport failure, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>

#include "wa/bus.h"

int main(int argc, char **argv)
{
    const wa_sock_opts_t opts = {0};
    cJSON *args = NULL;
    char rid[WA_RID_MAX + 1], *text;
    nng_socket req;
    wa_reply_t rep;
    wa_op_t op;
    wa_err_t rv;
    long timeout = 2000;

    if (argc < 3 || argc > 6 || wa_op_from_name(argv[2], &op) != WA_OK) {
        fprintf(stderr, "usage: buscall <url> <op> [user] [args-json] "
                        "[timeout-ms]\n");
        return 2;
    }
    if (argc > 4 && (args = cJSON_Parse(argv[4])) == NULL) {
        fprintf(stderr, "buscall: args is not JSON\n");
        return 2;
    }
    if (argc > 5)
        timeout = strtol(argv[5], NULL, 10);
    if ((rv = wa_bus_open(WA_SOCK_REQ, WA_SOCK_DIAL, argv[1], &opts, &req)) !=
        WA_OK) {
        fprintf(stderr, "buscall: %s: %s\n", argv[1], wa_strerror(rv));
        cJSON_Delete(args);
        return 3;
    }
    wa_rid_new(rid, sizeof(rid));
    rv = wa_bus_call(req, op, argc > 3 ? argv[3] : "", rid, args, (int)timeout,
                     &rep);
    cJSON_Delete(args);
    nng_close(req);
    if (rv == WA_OK) {
        text = cJSON_PrintUnformatted(rep.data);
        printf("%s\n", text != NULL ? text : "null");
        free(text);
        wa_reply_clear(&rep);
        return 0;
    }
    if (rep.message[0] != '\0') {
        printf("%s: %s\n", wa_err_code(rv), rep.message);
        wa_reply_clear(&rep);
        return 1;
    }
    fprintf(stderr, "buscall: %s\n", wa_strerror(rv));
    return 3;
}
