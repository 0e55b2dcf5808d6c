# Turn a file into C: cmake -DIN=<file> -DOUT=<file.c> -DNAME=<symbol> -P embed.cmake
# Defines `const unsigned char NAME[]` (NUL-terminated),
# `const size_t NAME_len` (without the NUL) and `const char NAME_etag[]`
# (a strong HTTP entity tag, quotes included: the file's SHA-256, 128 bits
# of it in hex), so a changed file is a changed tag.
file(READ "${IN}" hex HEX)
file(SHA256 "${IN}" sha)
string(SUBSTRING "${sha}" 0 32 tag)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE "${OUT}.tmp"
     "/* Generated from ${IN} by embed.cmake: do not edit. */\n"
     "#include <stddef.h>\n"
     "const unsigned char ${NAME}[] = {${bytes}0x00};\n"
     "const size_t ${NAME}_len = ${len};\n"
     "const char ${NAME}_etag[] = \"\\\"${tag}\\\"\";\n")
file(RENAME "${OUT}.tmp" "${OUT}")
