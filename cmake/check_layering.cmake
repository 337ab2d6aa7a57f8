# Fails when a library folder includes a header of a folder it must not depend on, so an upward
# include cannot creep back in. Run by the build (target `layering`, part of `all`) as
#   cmake -DSOURCE_DIR=<repo> -DSTAMP=<file> -P cmake/check_layering.cmake
# Each folder lists the folders it may include besides itself; main.cpp, tests/, bench/ and fuzz/
# may include anything. storage/sqlite and storage/postgres are the backends, each its own library
# above storage: only the program's entry point (main.cpp), tests, benchmarks and fuzz targets,
# which choose a backend, include them, and storage/migrate, which copies from one to the other.
set(allowed_core "")
set(allowed_config "core")
set(allowed_storage "core")
set(allowed_storage/sqlite "core;storage")
set(allowed_storage/postgres "core;storage")
# storage/migrate copies a SQLite database into PostgreSQL (`vigil migrate`): the one library
# above both backends; it reads --to through config's connection-string checks.
set(allowed_storage/migrate "core;config;storage;storage/sqlite;storage/postgres")
# runner parses a service for `vigil probe` through config.
set(allowed_runner "core;config")
set(allowed_alerting "core;storage;runner")
set(allowed_api "core;config;storage;runner;alerting")

set(violations "")
foreach(folder core config storage storage/sqlite storage/postgres storage/migrate runner alerting api)
  file(GLOB files ${SOURCE_DIR}/${folder}/*.h ${SOURCE_DIR}/${folder}/*.cpp)
  foreach(file ${files})
    file(STRINGS ${file} includes REGEX "^#include \"[a-z_/]+\\.h\"")
    foreach(line ${includes})
      string(REGEX REPLACE "^#include \"([a-z_/]+)/[a-z_]+\\.h\".*" "\\1" included "${line}")
      if(included STREQUAL line OR included STREQUAL folder)
        continue()
      endif()
      list(FIND allowed_${folder} "${included}" found)
      if(found EQUAL -1)
        file(RELATIVE_PATH shown ${SOURCE_DIR} ${file})
        string(APPEND violations "  ${shown}: ${line} (${folder}/ may include: "
                                 "${allowed_${folder}})\n")
      endif()
    endforeach()
  endforeach()
endforeach()

if(violations)
  message(FATAL_ERROR "layering: includes against the dependency order "
                      "core <- config, storage <- runner <- alerting <- api:\n${violations}")
endif()
if(STAMP)
  file(TOUCH ${STAMP})
endif()
