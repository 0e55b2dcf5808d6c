/*
 * qr.c - a QR login string as a PNG data URL: libqrencode for the matrix,
 * libpng (writing to memory) for the image, base64 for the URL.
 */
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <qrencode.h>

#include "session.h"

typedef struct membuf {
    unsigned char *data;
    size_t len, cap;
    int oom;
} membuf_t;

static void png_write_mem(png_structp png, png_bytep data, png_size_t len)
{
    membuf_t *m = png_get_io_ptr(png);
    unsigned char *nd;
    size_t want;

    if (m->oom)
        return;
    if (m->cap - m->len < len) {
        want = (m->cap + len) * 2;
        if ((nd = realloc(m->data, want)) == NULL) {
            m->oom = 1;
            png_error(png, "out of memory");
            return;
        }
        m->data = nd;
        m->cap = want;
    }
    memcpy(m->data + m->len, data, len);
    m->len += len;
}

static void png_flush_mem(png_structp png)
{
    (void)png;
}

wa_err_t qr__matrix(const char *raw, qr_matrix_t *out)
{
    QRcode *code;
    size_t n, i;

    if (raw == NULL || out == NULL || raw[0] == '\0' ||
        strlen(raw) > SS_QR_RAW_MAX)
        return WA_EINVAL;
    /* 8-bit mode, case kept: the string is data, not text to optimise. */
    code = QRcode_encodeString(raw, 0, QR_ECLEVEL_L, QR_MODE_8, 1);
    if (code == NULL)
        return WA_EINVAL;
    n = (size_t)code->width * (size_t)code->width;
    if ((out->dark = malloc(n)) == NULL) {
        QRcode_free(code);
        return WA_ENOMEM;
    }
    for (i = 0; i < n; i++)
        out->dark[i] = code->data[i] & 1; /* bit 0: dark module */
    out->width = code->width;
    QRcode_free(code);
    return WA_OK;
}

void qr__matrix_free(qr_matrix_t *m)
{
    if (m != NULL) {
        free(m->dark);
        m->dark = NULL;
        m->width = 0;
    }
}

/* Write the matrix as a 1-bit grayscale PNG, SS_QR_SCALE pixels a module
 * and a quiet zone of SS_QR_MARGIN modules. */
static wa_err_t matrix_png(const qr_matrix_t *qm, membuf_t *mem, int *px)
{
    png_structp png = NULL;
    png_infop info = NULL;
    unsigned char *row = NULL;
    const int side = (qm->width + 2 * SS_QR_MARGIN) * SS_QR_SCALE;
    const size_t rowlen = ((size_t)side + 7) / 8;
    wa_err_t err = WA_EINTERNAL;
    volatile int y; /* setjmp: kept in memory */

    if ((row = malloc(rowlen)) == NULL)
        return WA_ENOMEM;
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (png == NULL || (info = png_create_info_struct(png)) == NULL)
        goto out;
    if (setjmp(png_jmpbuf(png))) {
        err = mem->oom ? WA_ENOMEM : WA_EINTERNAL;
        goto out;
    }
    png_set_write_fn(png, mem, png_write_mem, png_flush_mem);
    png_set_IHDR(png, info, (png_uint_32)side, (png_uint_32)side, 1,
                 PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (y = 0; y < side; y++) {
        int my = y / SS_QR_SCALE - SS_QR_MARGIN;

        memset(row, 0xff, rowlen); /* 1 = white */
        for (int x = 0; x < side; x++) {
            int mx = x / SS_QR_SCALE - SS_QR_MARGIN;

            if (mx >= 0 && my >= 0 && mx < qm->width && my < qm->width &&
                qm->dark[(size_t)my * (size_t)qm->width + (size_t)mx])
                row[x / 8] &= (unsigned char)~(0x80u >> (x % 8));
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    *px = side;
    err = WA_OK;
out:
    png_destroy_write_struct(png != NULL ? &png : NULL,
                             info != NULL ? &info : NULL);
    free(row);
    return err;
}

wa_err_t qr__png(const char *raw, unsigned char **png, size_t *len, int *px)
{
    qr_matrix_t qm = {0};
    membuf_t mem = {0};
    wa_err_t err;
    int side = 0;

    if (png == NULL || len == NULL)
        return WA_EINVAL;
    if ((err = qr__matrix(raw, &qm)) != WA_OK)
        return err;
    err = matrix_png(&qm, &mem, &side);
    qr__matrix_free(&qm);
    if (err != WA_OK) {
        free(mem.data);
        return err;
    }
    *png = mem.data;
    *len = mem.len;
    if (px != NULL)
        *px = side;
    return WA_OK;
}

char *qr__base64(const unsigned char *in, size_t len)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i, o = 0;
    char *out;

    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    if ((out = malloc((len + 2) / 3 * 4 + 1)) == NULL)
        return NULL;
    for (i = 0; i + 2 < len; i += 3) {
        unsigned v =
            (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = tab[v >> 6 & 63];
        out[o++] = tab[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)in[i] << 16;

        if (i + 1 < len)
            v |= (unsigned)in[i + 1] << 8;
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < len ? tab[v >> 6 & 63] : '=';
        out[o++] = '=';
    }
    out[o] = '\0';
    return out;
}

wa_err_t qr__data_url(const char *raw, char **out)
{
    static const char prefix[] = "data:image/png;base64,";
    unsigned char *png = NULL;
    size_t len = 0, blen;
    char *b64, *url;
    wa_err_t err;

    if (out == NULL)
        return WA_EINVAL;
    if ((err = qr__png(raw, &png, &len, NULL)) != WA_OK)
        return err;
    b64 = qr__base64(png, len);
    free(png);
    if (b64 == NULL)
        return WA_ENOMEM;
    blen = strlen(b64);
    if ((url = malloc(sizeof(prefix) + blen)) == NULL) {
        free(b64);
        return WA_ENOMEM;
    }
    memcpy(url, prefix, sizeof(prefix) - 1);
    memcpy(url + sizeof(prefix) - 1, b64, blen + 1);
    free(b64);
    *out = url;
    return WA_OK;
}
