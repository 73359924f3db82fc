# Turns files into C arrays at build time.

function(strata_embed_file sym src out)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DMODE=file -DSYM=${sym} -DSRC=${src} -DOUT=${out}
            -P ${CMAKE_SOURCE_DIR}/cmake/EmbedGen.cmake
    DEPENDS ${src} ${CMAKE_SOURCE_DIR}/cmake/EmbedGen.cmake VERBATIM)
endfunction()

function(strata_embed_schema role dir out)
  file(GLOB files CONFIGURE_DEPENDS ${dir}/*.sql)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DMODE=schema -DSYM=${role} -DSRC=${dir} -DOUT=${out}
            -P ${CMAKE_SOURCE_DIR}/cmake/EmbedGen.cmake
    DEPENDS ${files} ${CMAKE_SOURCE_DIR}/cmake/EmbedGen.cmake VERBATIM)
endfunction()
