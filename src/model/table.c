/* model/table.c: SQL table naming for forms (see the naming note in model.h). */
#include <stdio.h>

#include "model/model.h"

int fv_model_form_table(const struct fv_app *app, const struct fv_form *form, char *ret, size_t cap)
{
    int n = snprintf(ret, cap, "f_%s__%s", app->link_name, form->link_name);
    if (n < 0 || (size_t)n >= cap)
        return FV_E_LIMIT;
    return FV_OK;
}
