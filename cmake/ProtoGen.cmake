# payorch_proto_generate(<out-var> GRPC <ON|OFF> ROOT <dir> PROTOS <rel>...)
# Runs protoc (and the gRPC C++ plugin when GRPC is ON) on each proto, relative to ROOT,
# writing into ${PAYORCH_GEN_DIR}. Every proto root in PAYORCH_PROTO_PATHS is on the import path.
set(PAYORCH_GEN_DIR ${CMAKE_BINARY_DIR}/gen CACHE INTERNAL "")
file(MAKE_DIRECTORY ${PAYORCH_GEN_DIR})
set(PAYORCH_GOOGLEAPIS_PROTO_DIR /usr/share/gocode/src/github.com/gogo/googleapis
    CACHE PATH "Directory holding google/rpc/*.proto (Debian: golang-github-gogo-googleapis-dev)")
set(PAYORCH_GRPC_PROTO_DIR /usr/share/grpc-proto
    CACHE PATH "Directory holding grpc/health/v1/health.proto (Debian: grpc-proto)")

function(payorch_proto_generate out_var)
  cmake_parse_arguments(ARG "" "GRPC;ROOT" "PROTOS" ${ARGN})
  set(srcs)
  foreach(rel IN LISTS ARG_PROTOS)
    string(REGEX REPLACE "\\.proto$" "" base ${rel})
    set(outs ${PAYORCH_GEN_DIR}/${base}.pb.cc ${PAYORCH_GEN_DIR}/${base}.pb.h)
    set(grpc_args)
    if(ARG_GRPC)
      list(APPEND outs ${PAYORCH_GEN_DIR}/${base}.grpc.pb.cc ${PAYORCH_GEN_DIR}/${base}.grpc.pb.h)
      set(grpc_args --grpc_out=${PAYORCH_GEN_DIR}
                    --plugin=protoc-gen-grpc=$<TARGET_FILE:gRPC::grpc_cpp_plugin>)
    endif()
    add_custom_command(
      OUTPUT ${outs}
      COMMAND protobuf::protoc --proto_path=${ARG_ROOT}
              --proto_path=${PAYORCH_GOOGLEAPIS_PROTO_DIR}
              --proto_path=${Protobuf_INCLUDE_DIR}
              --cpp_out=${PAYORCH_GEN_DIR} ${grpc_args}
              ${ARG_ROOT}/${rel}
      DEPENDS ${ARG_ROOT}/${rel} protobuf::protoc gRPC::grpc_cpp_plugin
      COMMENT "protoc ${rel}" VERBATIM)
    list(APPEND srcs ${PAYORCH_GEN_DIR}/${base}.pb.cc)
    if(ARG_GRPC)
      list(APPEND srcs ${PAYORCH_GEN_DIR}/${base}.grpc.pb.cc)
    endif()
  endforeach()
  set(${out_var} ${srcs} PARENT_SCOPE)
endfunction()
