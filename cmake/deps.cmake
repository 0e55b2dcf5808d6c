# The seven libraries, as Debian 12 ships them. Each becomes one imported
# target; services link only what they use.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)

# nng ships a working CMake config.
find_package(nng 1.5 CONFIG REQUIRED)

pkg_check_modules(SQLITE3 REQUIRED IMPORTED_TARGET sqlite3>=3.40)
pkg_check_modules(JWT REQUIRED IMPORTED_TARGET libjwt>=1.10)
pkg_check_modules(CJSON REQUIRED IMPORTED_TARGET libcjson>=1.7)
pkg_check_modules(QRENCODE REQUIRED IMPORTED_TARGET libqrencode>=4.1)
pkg_check_modules(UV REQUIRED IMPORTED_TARGET libuv>=1.44)
pkg_check_modules(PNG REQUIRED IMPORTED_TARGET libpng>=1.6)
pkg_check_modules(CMOCKA REQUIRED IMPORTED_TARGET cmocka>=1.1)
# libcrypto comes with libjwt already; proto uses its SHA-256 for user
# directory names.
pkg_check_modules(CRYPTO REQUIRED IMPORTED_TARGET libcrypto>=3.0)

# Debian's libcivetweb-dev installs a CMake config that references
# /usr/bin/civetweb, which only the separate `civetweb` package provides, so
# find_package(civetweb) fails. Find the library and header directly.
find_library(CIVETWEB_LIBRARY NAMES civetweb REQUIRED)
find_path(CIVETWEB_INCLUDE_DIR NAMES civetweb.h REQUIRED)
add_library(wa_civetweb INTERFACE)
target_link_libraries(wa_civetweb INTERFACE ${CIVETWEB_LIBRARY} Threads::Threads)
target_include_directories(wa_civetweb SYSTEM INTERFACE ${CIVETWEB_INCLUDE_DIR})
add_library(civetweb::civetweb ALIAS wa_civetweb)
