#include <pthread.h>

typedef pthread_mutex_t mp_thread_mutex_t;
typedef pthread_mutex_t mp_thread_recursive_mutex_t;

void mp_thread_init(void);
