/*
 * ss_qr_test.c - session-svc's QR rendering: the PNG decodes, has the
 * expected size, and its pixels are libqrencode's matrix for the exact raw
 * string (so a scanner reads back what the page showed); the data URL is
 * well-formed base64 of that PNG.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <qrencode.h>

#include "session.h"

static const char raw[] =
    "2@Yd0J1bk4Qm9xW2fTqB3nZs8+PvKcHgLaE1uRtYoIi5XwCzD6hNjM7lS,"
    "q3Zk1v0f2yH4x8mT6wB9nR5pL7cJ3dG1sA0eK2uQ4iO=,"
    "Vb8nM3cX6zL1kJ4hG7fD0sA9pO2iU5yT8rE3wQ6qW1e=,"
    "dG9wLXNlY3JldC1mb3ItdGVzdHM=,WEB";

typedef struct img {
    png_uint_32 w, h;
    int depth, color;
    unsigned char *px; /* one byte per pixel: 0 black, 255 white */
} img_t;

typedef struct reader {
    const unsigned char *buf;
    size_t len, off;
} reader_t;

static void read_mem(png_structp png, png_bytep out, png_size_t n)
{
    reader_t *r = png_get_io_ptr(png);

    if (r->len - r->off < n)
        png_error(png, "short");
    memcpy(out, r->buf + r->off, n);
    r->off += n;
}

/* Decode a PNG with libpng (expanded to 8-bit gray). */
static void decode(const unsigned char *buf, size_t len, img_t *im)
{
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    reader_t r = {buf, len, 0};
    png_bytepp rows;

    assert_non_null(png);
    assert_non_null(info);
    assert_int_equal(setjmp(png_jmpbuf(png)), 0);
    assert_int_equal(png_sig_cmp(buf, 0, 8), 0);
    png_set_read_fn(png, &r, read_mem);
    png_read_info(png, info);
    im->w = png_get_image_width(png, info);
    im->h = png_get_image_height(png, info);
    im->depth = png_get_bit_depth(png, info);
    im->color = png_get_color_type(png, info);
    png_set_expand_gray_1_2_4_to_8(png);
    png_read_update_info(png, info);
    assert_int_equal(png_get_rowbytes(png, info), im->w);
    im->px = malloc((size_t)im->w * im->h);
    rows = malloc(sizeof(*rows) * im->h);
    for (png_uint_32 y = 0; y < im->h; y++)
        rows[y] = im->px + (size_t)y * im->w;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
}

static void png_matches_matrix(void **state)
{
    unsigned char *png = NULL;
    qr_matrix_t m = {0};
    size_t len = 0;
    img_t im = {0};
    int px = 0, side;

    (void)state;
    assert_int_equal(qr__png(raw, &png, &len, &px), WA_OK);
    assert_int_equal(qr__matrix(raw, &m), WA_OK);
    side = (m.width + 2 * SS_QR_MARGIN) * SS_QR_SCALE;
    assert_int_equal(px, side);
    decode(png, len, &im);
    assert_int_equal(im.w, side);
    assert_int_equal(im.h, side);
    assert_int_equal(im.depth, 1);
    assert_int_equal(im.color, PNG_COLOR_TYPE_GRAY);
    /* Every pixel: the module it belongs to, quiet zone white. */
    for (int y = 0; y < side; y++) {
        for (int x = 0; x < side; x++) {
            int mx = x / SS_QR_SCALE - SS_QR_MARGIN;
            int my = y / SS_QR_SCALE - SS_QR_MARGIN;
            int dark = mx >= 0 && my >= 0 && mx < m.width && my < m.width &&
                       m.dark[my * m.width + mx];

            assert_int_equal(im.px[y * side + x], dark ? 0 : 255);
        }
    }
    free(im.px);
    free(png);
    qr__matrix_free(&m);
}

/* The matrix is libqrencode's own encoding of the exact string: encoding
 * it again independently gives the same modules, and a different string
 * (one byte changed) does not. */
static void matrix_is_the_raw_string(void **state)
{
    qr_matrix_t m = {0};
    QRcode *ref, *other;
    char changed[sizeof(raw)];

    (void)state;
    assert_int_equal(qr__matrix(raw, &m), WA_OK);
    ref = QRcode_encodeString(raw, 0, QR_ECLEVEL_L, QR_MODE_8, 1);
    assert_non_null(ref);
    assert_int_equal(ref->width, m.width);
    for (int i = 0; i < m.width * m.width; i++)
        assert_int_equal(ref->data[i] & 1, m.dark[i]);
    memcpy(changed, raw, sizeof(raw));
    changed[10] ^= 1;
    other = QRcode_encodeString(changed, 0, QR_ECLEVEL_L, QR_MODE_8, 1);
    assert_non_null(other);
    assert_int_equal(other->width, m.width);
    assert_true(memcmp(other->data, ref->data, (size_t)m.width * m.width) != 0);
    QRcode_free(ref);
    QRcode_free(other);
    qr__matrix_free(&m);
}

static int b64val(char c)
{
    const char *tab =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(tab, c);

    return c != '\0' && p != NULL ? (int)(p - tab) : -1;
}

static void data_url_is_base64_png(void **state)
{
    const char prefix[] = "data:image/png;base64,";
    unsigned char *png = NULL, *dec;
    char *url = NULL;
    size_t len = 0, blen, n = 0;
    const char *b;

    (void)state;
    assert_int_equal(qr__data_url(raw, &url), WA_OK);
    assert_int_equal(strncmp(url, prefix, sizeof(prefix) - 1), 0);
    b = url + sizeof(prefix) - 1;
    blen = strlen(b);
    assert_int_equal(blen % 4, 0);
    dec = malloc(blen);
    for (size_t i = 0; i < blen; i += 4) {
        int v[4];

        for (int k = 0; k < 4; k++)
            v[k] = b[i + k] == '=' ? 0 : b64val(b[i + k]);
        for (int k = 0; k < 4; k++)
            assert_true(v[k] >= 0);
        dec[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
        if (b[i + 2] != '=')
            dec[n++] = (unsigned char)(v[1] << 4 | v[2] >> 2);
        if (b[i + 3] != '=')
            dec[n++] = (unsigned char)(v[2] << 6 | v[3]);
    }
    assert_int_equal(qr__png(raw, &png, &len, NULL), WA_OK);
    assert_int_equal(n, len);
    assert_memory_equal(dec, png, len);
    assert_true(strlen(url) < 64 * 1024); /* fits store-svc's qrCode */
    free(dec);
    free(png);
    free(url);
}

static void base64_vectors(void **state)
{
    static const struct {
        const char *in, *out;
    } v[] = {{"", ""},
             {"f", "Zg=="},
             {"fo", "Zm8="},
             {"foo", "Zm9v"},
             {"foob", "Zm9vYg=="},
             {"fooba", "Zm9vYmE="},
             {"foobar", "Zm9vYmFy"}};

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char *o = qr__base64((const unsigned char *)v[i].in, strlen(v[i].in));

        assert_string_equal(o, v[i].out);
        free(o);
    }
}

static void bad_input_refused(void **state)
{
    char *big = malloc(SS_QR_RAW_MAX + 2), *url = NULL;
    qr_matrix_t m = {0};

    (void)state;
    memset(big, 'A', SS_QR_RAW_MAX + 1);
    big[SS_QR_RAW_MAX + 1] = '\0';
    assert_int_equal(qr__data_url(big, &url), WA_EINVAL);
    assert_null(url);
    assert_int_equal(qr__data_url("", &url), WA_EINVAL);
    assert_int_equal(qr__data_url(NULL, &url), WA_EINVAL);
    assert_int_equal(qr__matrix(NULL, &m), WA_EINVAL);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(png_matches_matrix),
        cmocka_unit_test(matrix_is_the_raw_string),
        cmocka_unit_test(data_url_is_base64_png),
        cmocka_unit_test(base64_vectors),
        cmocka_unit_test(bad_input_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
