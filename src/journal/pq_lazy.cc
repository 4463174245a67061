// The libpq functions mailshard calls (the journal, and the PostgreSQL tests'
// own sessions), defined here as forwarders to the library opened by
// load_libpq() (see util/lazy_library.h for why). Each forwarder has the
// exact type of the header's declaration (decltype) and resolves its target once.
#include <libpq-fe.h>

#include "journal/pq_lazy.h"
#include "util/lazy_library.h"

namespace mailshard {
namespace {

LazyLibrary& pq_library() {
  static LazyLibrary lib(MAILSHARD_PQ_SONAME);
  return lib;
}

}  // namespace

Status load_libpq() { return pq_library().load(); }

}  // namespace mailshard

#define MS_PQ_FORWARD(ret, name, params, args)                                                        \
  ret name params {                                                                                   \
    static const auto fn = reinterpret_cast<decltype(&::name)>(mailshard::pq_library().symbol(#name)); \
    return fn args;                                                                                   \
  }

extern "C" {

MS_PQ_FORWARD(PGconn*, PQconnectdb, (const char* conninfo), (conninfo))
MS_PQ_FORWARD(PGconn*, PQconnectdbParams, (const char* const* keywords, const char* const* values, int expand_dbname),
              (keywords, values, expand_dbname))
MS_PQ_FORWARD(void, PQfinish, (PGconn * conn), (conn))
MS_PQ_FORWARD(void, PQreset, (PGconn * conn), (conn))
MS_PQ_FORWARD(PQconninfoOption*, PQconninfoParse, (const char* conninfo, char** errmsg), (conninfo, errmsg))
MS_PQ_FORWARD(void, PQconninfoFree, (PQconninfoOption * options), (options))
MS_PQ_FORWARD(ConnStatusType, PQstatus, (const PGconn* conn), (conn))
MS_PQ_FORWARD(char*, PQerrorMessage, (const PGconn* conn), (conn))
MS_PQ_FORWARD(int, PQconnectionNeedsPassword, (const PGconn* conn), (conn))
MS_PQ_FORWARD(PQnoticeProcessor, PQsetNoticeProcessor, (PGconn * conn, PQnoticeProcessor proc, void* arg),
              (conn, proc, arg))
MS_PQ_FORWARD(PGresult*, PQexec, (PGconn * conn, const char* query), (conn, query))
MS_PQ_FORWARD(PGresult*, PQexecParams,
              (PGconn * conn, const char* command, int nParams, const Oid* paramTypes, const char* const* paramValues,
               const int* paramLengths, const int* paramFormats, int resultFormat),
              (conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats, resultFormat))
MS_PQ_FORWARD(ExecStatusType, PQresultStatus, (const PGresult* res), (res))
MS_PQ_FORWARD(char*, PQresultErrorMessage, (const PGresult* res), (res))
MS_PQ_FORWARD(char*, PQresultErrorField, (const PGresult* res, int fieldcode), (res, fieldcode))
MS_PQ_FORWARD(int, PQntuples, (const PGresult* res), (res))
MS_PQ_FORWARD(char*, PQcmdTuples, (PGresult * res), (res))
MS_PQ_FORWARD(char*, PQgetvalue, (const PGresult* res, int row, int col), (res, row, col))
MS_PQ_FORWARD(int, PQgetlength, (const PGresult* res, int row, int col), (res, row, col))
MS_PQ_FORWARD(int, PQgetisnull, (const PGresult* res, int row, int col), (res, row, col))
MS_PQ_FORWARD(void, PQclear, (PGresult * res), (res))
MS_PQ_FORWARD(void, PQfreemem, (void* ptr), (ptr))
MS_PQ_FORWARD(int, PQsocket, (const PGconn* conn), (conn))
MS_PQ_FORWARD(int, PQconsumeInput, (PGconn * conn), (conn))
MS_PQ_FORWARD(PGnotify*, PQnotifies, (PGconn * conn), (conn))

}  // extern "C"
