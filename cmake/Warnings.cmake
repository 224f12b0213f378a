# payorch_warnings(<target>): the project's warning set; errors when PAYORCH_WERROR is on.
function(payorch_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter
                                           $<$<BOOL:${PAYORCH_WERROR}>:-Werror>)
endfunction()
