# Warnings and sanitizers travel on INTERFACE targets so every component gets the same flags.
add_library(opsagent_warnings INTERFACE)
target_compile_options(opsagent_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Wcast-align -Wunused -Woverloaded-virtual
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough
  # GCC 12 false positives at -O2 inside Asio and libstdc++ (GCC bugs 105329, 104336):
  -Wno-restrict)

add_library(opsagent_options INTERFACE)
target_compile_definitions(opsagent_options INTERFACE
  BOOST_ASIO_NO_DEPRECATED
  BOOST_ASIO_DISABLE_BOOST_COROUTINE
  OPSAGENT_VERSION="${PROJECT_VERSION}")
target_link_libraries(opsagent_options INTERFACE opsagent_warnings)

if(OPSAGENT_SANITIZE)
  target_compile_options(opsagent_options INTERFACE -fsanitize=${OPSAGENT_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  target_link_options(opsagent_options INTERFACE -fsanitize=${OPSAGENT_SANITIZE})
  # Clang 14's -fsanitize=function (part of "undefined") cannot compile a C++20 coroutine
  # ("Cannot represent a difference across sections"); the fuzz preset leaves that one check out.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang" AND OPSAGENT_SANITIZE MATCHES "undefined")
    target_compile_options(opsagent_options INTERFACE -fno-sanitize=function)
  endif()
endif()

# Hardening for release binaries (Debian's own defaults, stated explicitly).
target_compile_options(opsagent_options INTERFACE -fstack-protector-strong -fPIE)
target_compile_definitions(opsagent_options INTERFACE $<$<NOT:$<CONFIG:Debug>>:_FORTIFY_SOURCE=2>)
# Debug builds (debug, asan, tsan, fuzz) check libstdc++'s preconditions: an index out of range,
# an empty optional or a null unique_ptr dereferenced aborts there instead of reading inline
# storage no sanitizer watches (tests/unit/build_flags_test.cpp).
target_compile_definitions(opsagent_options INTERFACE $<$<CONFIG:Debug>:_GLIBCXX_ASSERTIONS>)
# Except under ASan+UBSan: there every UBSan check's static record is an instrumented global, a
# 200 MB test binary carries two million relative relocations, and a PIE spent half of each
# process start (every test, agent and guard the suite starts; 0.4 against 0.2 s) applying them.
# ThreadSanitizer needs a PIE and has few.
if(OPSAGENT_SANITIZE MATCHES "address|undefined")
  target_link_options(opsagent_options INTERFACE -no-pie -Wl,-z,relro,-z,now)
else()
  target_link_options(opsagent_options INTERFACE -pie -Wl,-z,relro,-z,now)
endif()
