/* A Docker tool in a FROM-scratch image: answers with the request it received and the
 * container's view of itself (hostname, uid), as JSON. Built statically by ./build.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    static char request[65536];
    size_t n = fread(request, 1, sizeof request - 1, stdin);
    request[n] = '\0';
    while (n > 0 && (request[n - 1] == '\n' || request[n - 1] == ' ')) request[--n] = '\0';
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    /* The request is the JSON document the runtime wrote, so it can be embedded as is. */
    printf("{\"received\": %s, \"hostname\": \"%s\", \"uid\": %d}\n", n ? request : "null", host,
           (int)getuid());
    return 0;
}
