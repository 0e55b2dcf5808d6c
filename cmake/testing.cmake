# wa_unit_test(<name> SOURCES <files...> LIBS <targets...>)
# One cmocka executable and one ctest per module, with a timeout.
function(wa_unit_test name)
    cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
    add_executable(${name} ${T_SOURCES})
    target_link_libraries(${name} PRIVATE PkgConfig::CMOCKA ${T_LIBS})
    set_target_properties(${name} PROPERTIES
        RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
    add_test(NAME unit.${name} COMMAND ${name})
    set_tests_properties(unit.${name} PROPERTIES TIMEOUT 60 LABELS unit)
    # ASan's check for pointers into a returned function's frame is off by
    # default; it found a store-svc write reading ops__handle's frame.
    if(SANITIZE MATCHES "address")
        set_tests_properties(unit.${name} PROPERTIES
            ENVIRONMENT "ASAN_OPTIONS=detect_stack_use_after_return=1")
    endif()
endfunction()
