# docs/flags.md is every tool's --help_markdown under one header. Check (ctest flags_doc):
#   cmake -DTOOLS_DIR=<dir with the tools> -DDOC=docs/flags.md -P tests/flags_doc.cmake
# Regenerate (after changing a flag), from the checkout's root with the tools built in build/ (build/src/cli):
#   cmake -DTOOLS_DIR=build/src/cli -DDOC=docs/flags.md -DWRITE=1 -P tests/flags_doc.cmake
set(tools detr_train detr_bench detr_eval detr_predict detr_inspect detr_make_dataset detr_parity detr_resize
          detr_bench_coco_eval)
set(text "# Command-line flags\n\n")
string(APPEND text "Every tool's flags as its `--help_markdown` prints them. Generated; do not edit by hand.\n")
string(APPEND text "The ctest test `flags_doc` fails when this file differs from what the tools print;\n")
string(APPEND text "regenerate it from the checkout's root with the tools built in `build/` (`build/src/cli`):\n\n")
string(APPEND text "    cmake -DTOOLS_DIR=build/src/cli -DDOC=docs/flags.md -DWRITE=1 -P tests/flags_doc.cmake\n")
foreach(tool IN LISTS tools)
  execute_process(COMMAND ${TOOLS_DIR}/${tool} --help_markdown OUTPUT_VARIABLE out RESULT_VARIABLE rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${tool} --help_markdown exited ${rc}")
  endif()
  string(APPEND text "\n${out}\n")
endforeach()
if(WRITE)
  file(WRITE ${DOC} "${text}")
  message(STATUS "wrote ${DOC}")
else()
  file(READ ${DOC} doc)
  if(NOT doc STREQUAL text)
    file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/flags.md.expected "${text}")
    message(FATAL_ERROR "${DOC} differs from the tools' --help_markdown (expected: "
                        "${CMAKE_CURRENT_BINARY_DIR}/flags.md.expected); regenerate it with\n"
                        "  cmake -DTOOLS_DIR=build/src/cli -DDOC=docs/flags.md -DWRITE=1 -P tests/flags_doc.cmake")
  endif()
endif()
