/*
 * Shared fixture for the model unit tests: a clinic app using every field
 * type. JSON is written with ' for " to stay readable; fixture_json()
 * swaps them back.
 */
#ifndef FV_TEST_MODEL_FIXTURE_H
#define FV_TEST_MODEL_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "model/model_int.h"

static const char fixture_app[] =
    "{'format':1,'link_name':'clinic','display_name':'Clinic','date_format':'dd-MMM-yyyy',"
    "'time_zone':'UTC','forms':["
    "{'link_name':'Patient','display_name':'Patient','fields':["
    "{'link_name':'Patient_Number','type':'single_line','required':true,'unique':true,"
    "'max_length':16},"
    "{'link_name':'Full_Name','display_name':'Name','type':'name','pii':true},"
    "{'link_name':'Email','type':'email','pii':true,'encrypt':true},"
    "{'link_name':'Blood_Type','type':'dropdown','choices':['A+','A-','B+','B-','AB+','AB-',"
    "'O+','O-'],'default':'O+'},"
    "{'link_name':'Notes','type':'multi_line','contains_health_info':true},"
    "{'link_name':'Age','type':'number'},"
    "{'link_name':'Born','type':'date'},"
    "{'link_name':'Seen_At','type':'datetime'},"
    "{'link_name':'Wake','type':'time'},"
    "{'link_name':'Active','type':'decision','default':true},"
    "{'link_name':'Allergies','type':'multi_select','choices':['Nuts','Milk','50%_off','a_b']},"
    "{'link_name':'Home','type':'address'},"
    "{'link_name':'Site','type':'url'},"
    "{'link_name':'Phone','type':'phone'},"
    "{'link_name':'Weight','type':'decimal','decimal_places':1},"
    "{'link_name':'Score','type':'percent'},"
    "{'link_name':'Ticket','type':'autonumber','prefix':'P-','start':100},"
    "{'link_name':'Bio','type':'rich_text'},"
    "{'link_name':'Gender','type':'radio','choices':['F','M','X']},"
    "{'link_name':'Consents','type':'checkbox','choices':['Email','SMS']},"
    "{'link_name':'Zero','type':'currency','decimal_places':0}"
    "]},"
    "{'link_name':'Visit','fields':["
    "{'link_name':'Patient','type':'lookup','lookup':{'form':'Patient',"
    "'display_field':'Patient_Number'}},"
    "{'link_name':'Fee','type':'currency','decimal_places':2},"
    "{'link_name':'Others','type':'lookup','lookup':{'form':'Patient','display_field':'Email',"
    "'multi':true}}"
    "]}],"
    "'reports':["
    "{'link_name':'All_Patients','display_name':'All Patients','form':'Patient','type':'list',"
    "'quick_view':['Patient_Number','Full_Name','Email'],"
    "'detail_view':['Patient_Number','Full_Name','Email','Blood_Type','Notes','Added_Time'],"
    "'criteria':'Blood_Type != null','sort':{'field':'Patient_Number','order':'asc'}},"
    "{'link_name':'Visits','form':'Visit','type':'spreadsheet'}]}";

/* Copy of s with ' turned into "; caller frees with free(). */
static inline char *fixture_json(const char *s)
{
    char *p = strdup(s);
    if (p == NULL)
        abort();
    for (char *q = p; *q; q++)
        if (*q == '\'')
            *q = '"';
    return p;
}

/* Parse a '-quoted JSON app; NULL on error (err gets the reason). */
static inline struct fv_app *fixture_parse(const char *s, struct fv_error *err)
{
    struct fv_app *app = NULL;
    char *j = fixture_json(s);
    fv_error_init(err);
    if (fv_model_app_parse(j, strlen(j), &app, err) != FV_OK)
        app = NULL;
    free(j);
    return app;
}

#endif
