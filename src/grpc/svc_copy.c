/* quilt.v1.Quilt file methods, CopyOut and CopyIn: the work is in
 * runtime/copy.c and the quilt-copy helper. */
#include "grpc/call.h"
#include "grpc/services.h"
#include "runtime/copy.h"

void rpc_copy_out(struct grpc_call *call, const ProtobufCMessage *msg) {
  copy_out_rpc(call, (const Quilt__V1__CopyOutRequest *)msg);
}

void rpc_copy_in(struct grpc_call *call, const ProtobufCMessage *msg) {
  copy_in_input(call, (const Quilt__V1__CopyInChunk *)msg);
}

void rpc_copy_in_done(struct grpc_call *call) { copy_in_end(call); }
