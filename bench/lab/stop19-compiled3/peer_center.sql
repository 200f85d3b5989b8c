with __local_0__ as (
  select to_json(
    (
      json_build_object(
        'id'::text,
        ((__local_1__."id"))::text,
        'doseNumber'::text,
        (__local_1__."dose_number"),
        'lotNumber'::text,
        (__local_1__."lot_number"),
        'administeredOn'::text,
        (__local_1__."administered_on"),
        'nextDueOn'::text,
        (__local_1__."next_due_on"),
        '@recipientByRecipientId'::text,
        (
          select json_build_object(
            'id'::text,
            ((__local_2__."id"))::text,
            'nationalId'::text,
            (__local_2__."national_id"),
            'fullName'::text,
            (__local_2__."full_name")
          ) as object
          from "public"."recipients" as __local_2__
          where (__local_1__."recipient_id" = __local_2__."id") and (TRUE) and (TRUE)
        )
      )
    )
  ) as "@nodes"
  from (
    select __local_1__.*
    from "public"."doses" as __local_1__
    where (
      __local_1__."center_id" = $1
    ) and (TRUE) and (TRUE)
    order by __local_1__."administered_on" DESC,
    __local_1__."id" DESC
    limit 50
  ) __local_1__
),
__local_3__ as (
  select json_agg(
    to_json(__local_0__)
  ) as data
  from __local_0__
)
select coalesce(
  (
    select __local_3__.data
    from __local_3__
  ),
  '[]'::json
) as "data"
