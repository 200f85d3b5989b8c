// The registry tables a restore can write, and their columns (for the filter builder).
export const TABLES = {
  DOSES: ['id', 'recipient_id', 'dose_number', 'vaccine_code', 'lot_number', 'administered_on',
    'center_id', 'next_due_on', 'recorded_by', 'created_at', 'updated_at'],
  RECIPIENTS: ['id', 'national_id', 'full_name', 'birth_date', 'sex', 'phone', 'district_id',
    'center_id', 'registered_at', 'updated_at'],
  CENTERS: ['id', 'name', 'district_id'],
  DISTRICTS: ['id', 'name', 'division'],
  VACCINES: ['code', 'name', 'doses_required', 'dose_interval_days'],
};

export function fillTableSelect(select) {
  select.replaceChildren(...Object.keys(TABLES).map((name) => {
    const option = document.createElement('option');
    option.value = name;
    option.textContent = name.toLowerCase();
    return option;
  }));
}
